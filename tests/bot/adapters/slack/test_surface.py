"""Block Kit rendering of views, markdown as mrkdwn, the blocks Slack takes, Slack's refusals
and the rate budget, without a workspace (or against the fake Web API alone)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.adapters.slack.pace import Bucket, Limit, Pace, RateLimitRetries
from bot.adapters.slack.surface import (
    LIMIT,
    SlackSurface,
    blocks,
    escape,
    mrkdwn,
    private_blocks,
    refusals,
)
from bot.languages import Languages
from bot.metrics import Metrics
from bot.present import PlatformRefused, words
from bot.present.views import Attachment, RunCard
from bot.values import Action, RunReport
from sandbox import RunResult
from storage import Session, SessionKey, Version
from tests.fakes.slack_api import TEAM, FakeSlack, block_errors

KEY = SessionKey(platform="slack", workspace=TEAM, channel="C1", thread="1.1")
SESSION = Session(
    id=3, key=KEY, owner="U1", language="python", model="m", title="t",
    created_at=0.0, updated_at=0.0, version_count=1,
)  # fmt: skip
VERSION = Version(
    id=1, session_id=3, number=1, request="r", code="print(1)", note="", model="m",
    prompt_tokens=None, completion_tokens=None, latency_ms=1, status="ok", created_at=0.0,
)  # fmt: skip
PYTHON = Languages().get("python")


def fences_balanced(markdown: str) -> bool:
    return sum(1 for line in markdown.splitlines() if line.startswith("```")) % 2 == 0


def test_run_result_rendering() -> None:
    result = RunResult(
        status="limit",
        exit_code=None,
        stdout="x" * 10_000,
        stderr="Killed",
        duration_ms=2000,
        peak_memory_kb=51200,
        limit_hit="wall_time",
    )
    assert result.fixable  # a run stopped by a limit can be fixed: the core offers Fix
    fix = Action(kind="fix", session_id=3, number=1)
    report = RunReport(session=SESSION, version=VERSION, result=result, actions=(fix,))
    card = words.run_card(report, PYTHON, limit=LIMIT)
    body, buttons = blocks(card)
    text = body["text"]
    assert (
        body["type"] == "markdown"
        and card.summary == "Run of version 1 of #3 was stopped by a limit"
    )
    assert "stopped by a limit" in text and "limit hit: wall time" in text
    assert "no exit code" in text and "2.00 s" in text and "peak 50.0 MB" in text
    assert "```text\nKilled\n```" in text and "more characters" in text
    assert len(text) <= 4000 and fences_balanced(text)
    [button] = buttons["elements"]
    assert (button["action_id"], button["value"]) == ("codethread_fix", "fix:3:1")
    assert button["style"] == "primary" and "Fix" in button["text"]["text"]

    passed = dataclasses.replace(result, status="ok", exit_code=0, limit_hit=None, stdout="3\n")
    short = "import unittest\n\nclass T(unittest.TestCase):\n    pass\n"
    report = RunReport(session=SESSION, version=VERSION, result=passed, kind="test", tests=short)
    card = words.run_card(report, PYTHON, limit=LIMIT)
    [block] = blocks(card)  # passed: no Fix
    assert card.summary == "Tests of version 1 of #3 passed" and card.file is None
    assert f"```python\n{short}```" in block["text"] and "```text\n3\n```" in block["text"]

    long = short + "".join(f"    def test_{i}(self):\n        pass\n" for i in range(300))
    card = words.run_card(dataclasses.replace(report, tests=long), PYTHON, limit=LIMIT)
    [block] = blocks(card)
    assert "more lines in `test_snippet.py`, attached" in block["text"]
    assert "test_5" not in block["text"]
    assert len(block["text"]) <= 4000 and fences_balanced(block["text"])
    assert card.file is not None and card.file.filename == "test_snippet.py"
    assert card.file.content == long


def test_version_buttons_carry_their_action_and_delete_asks_first() -> None:
    actions = (
        Action(kind="run", session_id=3, number=1),
        Action(kind="test", session_id=3, number=1),
        Action(kind="delete", session_id=3),
    )
    card = words.version_card(SESSION, VERSION, PYTHON, actions=actions, limit=LIMIT)
    _, row = blocks(card)
    run, test, delete = row["elements"]
    assert [b["action_id"] for b in row["elements"]] == [
        "codethread_run",
        "codethread_test",
        "codethread_delete",
    ]
    assert [b["value"] for b in row["elements"]] == ["run:3:1", "test:3:1", "delete:3"]
    assert "style" not in test and delete["style"] == "danger"
    assert delete["confirm"]["title"]["text"] == "Delete this snippet?"
    assert delete["confirm"]["style"] == "danger" and "confirm" not in run


def test_a_status_is_a_small_context_line() -> None:
    [block] = blocks(words.waiting(2))
    assert block["type"] == "context"
    assert "Waiting for 2 earlier requests" in block["elements"][0]["text"]
    assert escape("a <b> & c") == "a &lt;b&gt; &amp; c"


def _error(error: str, status: int = 200, **headers: str) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.test/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers,
        status_code=status,
    )
    return SlackApiError(f"The Slack API said {error}", response)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("error", "reason", "wait"),
    [("not_in_channel", "not_in_channel", None), ("ratelimited", "rate_limited", 7.0)],
)
def test_slack_errors_become_platform_refusals(error: str, reason: str, wait: float | None) -> None:
    with pytest.raises(PlatformRefused) as refused, refusals():
        raise _error(error, 429 if wait else 200, **{"Retry-After": "7"})
    assert (refused.value.reason, refused.value.retry_after) == (reason, wait)
    assert words.explain(refused.value)


# -- mrkdwn for one person's eyes ------------------------------------------------------------------


def test_markdown_becomes_mrkdwn_minimally() -> None:
    assert mrkdwn("**Your snippets** (2):") == "*Your snippets* (2):"
    assert (
        mrkdwn("see [the thread](https://x.test/a?b=1)") == "see <https://x.test/a?b=1|the thread>"
    )
    assert mrkdwn("<@U1> asked & got a &lt;b&gt; · `x<y && **z**`") == (
        "<@U1> asked &amp; got a &lt;b&gt; · `x&lt;y &amp;&amp; **z**`"
    )  # people's text came escaped; code is escaped here and keeps its asterisks
    code = "```python\nif a < b and c:\n    print('**')\n```\nDone."
    assert mrkdwn(code) == "```\nif a &lt; b and c:\n    print('**')\n```\nDone."
    inner = "````markdown\n```\nquoted\n```\n````"  # a longer fence around a shorter one
    assert mrkdwn(inner) == "```\n`\u200b``\nquoted\n`\u200b``\n```"
    assert mrkdwn("```text\nunclosed") == "```\nunclosed\n```"


def test_private_views_are_sections_of_mrkdwn_within_slacks_limits() -> None:
    actions = (Action(kind="run", session_id=3, number=1), Action(kind="delete", session_id=3))
    card = words.shown(
        SESSION, VERSION, PYTHON, link="https://x.test/t", limit=LIMIT, actions=actions
    )
    shown = private_blocks(card)
    assert [b["type"] for b in shown] == ["section", "actions"] and block_errors(
        shown, "ephemeral"
    ) == []
    text = shown[0]["text"]
    assert text["type"] == "mrkdwn" and "*Version 1 of #3" in text["text"]
    assert "```\nprint(1)\n```" in text["text"] and "<https://x.test/t|the thread>" in text["text"]
    assert blocks(card)[0]["type"] == "markdown"  # in a channel message the markdown block stays

    long = "\n".join(f"line {i} < {i + 1}" for i in range(400))
    view = words.problem(ValueError("x"), request=long, limit=LIMIT)
    sections = private_blocks(view)
    assert len(sections) > 1 and block_errors(sections, "response_url") == []
    assert all(fences_balanced(b["text"]["text"]) for b in sections)
    assert "line 0 &lt; 1" in sections[0]["text"]["text"]


def test_the_fake_refuses_what_slack_refuses() -> None:
    markdown = [{"type": "markdown", "text": "**hi**"}]
    assert block_errors(markdown, "message") == []
    assert block_errors(markdown, "ephemeral") and block_errors(markdown, "response_url")
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert block_errors([section])
    assert block_errors([{"type": "markdown", "text": "x" * 7000}] * 2)  # 12,000 a message
    assert block_errors([{"type": "divider"}] * 51)
    button = {
        "type": "button",
        "action_id": "a",
        "value": "v",
        "text": {"type": "plain_text", "text": "b" * 76},
    }
    assert block_errors([{"type": "actions", "elements": [button]}])
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}
    assert block_errors([context])


async def test_an_ephemeral_markdown_block_is_refused_and_tell_sends_sections() -> None:
    async with FakeSlack() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postEphemeral(
                channel="C1", user="U1", text="x", blocks=[{"type": "markdown", "text": "**x**"}]
            )
        assert refused.value.response["error"] == "invalid_blocks"
        respond = AsyncRespond(response_url=slack.response_url("r"))
        answer = await respond(text="x", blocks=[{"type": "markdown", "text": "x"}])
        assert answer.status_code == 400 and slack.responses == []
        assert [method for method, _ in slack.invalid] == ["chat.postEphemeral", "response_url"]
        slack.invalid.clear()

        surface = SlackSurface(client=client, team=TEAM, channel="C1", user="U1", thread="1.1")
        await surface.tell(words.problem(ValueError("x"), request="**keep** me"))
        [told] = slack.ephemerals
        assert [b["type"] for b in told["blocks"]] == ["section"]
        assert "```\n**keep** me\n```" in told["blocks"][0]["text"]["text"]
        surface.respond = AsyncRespond(response_url=slack.response_url("r"))
        await surface.tell(words.snippet_list([SESSION], {3: "https://x.test/t"}, limit=LIMIT))
        [(_, listed)] = slack.responses
        assert listed["blocks"][0]["type"] == "section" and "<https://x.test/t|t>" in str(listed)
        assert slack.invalid == []


async def test_every_file_of_a_view_goes_to_the_thread_on_post_and_on_edit() -> None:
    snippet = Attachment(filename="snippet.sh", content="echo hi", title="t", language="bash")
    plot = Attachment(filename="plot.png", data=b"\x89PNG\r\n\x1a\n", title="plot.png · made")
    table = Attachment(filename="table.csv", data=b"a,b\n", title="table")
    card = RunCard(text="ran", summary="ran", file=snippet, outputs=(plot, table))
    async with FakeSlack() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        surface = SlackSurface(client=client, team=TEAM, channel="C1", user="U1", thread="1.1")
        posted = await surface.post(RunCard(text="waiting", summary="waiting"))
        assert slack.calls_to("files.completeUploadExternal") == []  # no files, no upload
        await surface.edit(posted, card, final=True)  # an edit cannot carry files: after it
        await surface.post(card)
        first, second = slack.calls_to("files.completeUploadExternal")
        assert first.params["thread_ts"] == second.params["thread_ts"] == "1.1"
        assert [f["title"] for f in first.params["files"]] == ["t", "plot.png · made", "table"]
        shared = [slack.files[f["id"]] for f in first.params["files"]]
        assert [f.data for f in shared] == [b"echo hi", plot.data, table.data]
        assert [f.snippet_type for f in shared] == ["shell", None, None]
        assert [f.alt_txt for f in shared] == [None, "plot.png · made", None]  # the picture's
        [files_message] = [m for m in slack.thread("C1", "1.1") if m.files][:1]
        assert [f["name"] for f in files_message.files] == [
            "snippet.sh",
            "plot.png",
            "table.csv",
        ]

        many = RunCard(text="x", summary="x", outputs=(plot,) * 12)  # Slack takes ten at once
        await surface.post(many)
        *_, ten, two = slack.calls_to("files.completeUploadExternal")
        assert (len(ten.params["files"]), len(two.params["files"])) == (10, 2)
        assert slack.invalid == []


# -- the rate budget -------------------------------------------------------------------------------


async def test_a_bucket_spares_tokens_only_beyond_what_results_need() -> None:
    now = [0.0]
    bucket = Bucket(Limit(per_minute=60, burst=4), clock=lambda: now[0])
    assert [bucket.spare(keep=2) for _ in range(4)] == [True, True, False, False]
    assert bucket.spare() and bucket.spare() and not bucket.spare()  # results take the rest
    now[0] = 1.0  # one token a second
    assert bucket.spare() and not bucket.spare()
    now[0] = 100.0
    assert [bucket.spare() for _ in range(5)] == [True] * 4 + [False]  # at most the burst
    fast = Bucket(Limit(per_minute=600, burst=1))  # ten a second, on the real clock
    began = time.monotonic()
    await asyncio.gather(fast.take(), fast.take(), fast.take())  # in turn
    assert 0.15 <= time.monotonic() - began < 0.5 and not fast.spare()


async def test_every_429_slack_answers_is_counted_retried_or_not() -> None:
    metrics = Metrics()
    pace = Pace(metrics=metrics)
    throttled = metrics.throttled.labels(platform="slack")
    async with FakeSlack() as slack:
        client = AsyncWebClient(
            token="xoxb-test",
            base_url=slack.base_url,
            retry_handlers=[RateLimitRetries(pace, max_retry_count=1)],
        )
        surface = SlackSurface(
            client=client, team=TEAM, channel="C1", user="U1", thread="1.1", pace=pace
        )
        slack.rate_limit("chat.postMessage", retry_after=0)
        posted = await surface.post(words.problem(ValueError("x"), request="r"))  # retried
        assert throttled._value.get() == 1 and len(slack.calls_to("chat.postMessage")) == 2
        slack.rate_limit("chat.update", retry_after=0, times=2)  # one retry, then given up
        with pytest.raises(PlatformRefused) as refused:
            await surface.edit(posted, words.problem(ValueError("y"), request="r"), final=True)
        assert refused.value.reason == "rate_limited"
        assert throttled._value.get() == 3 and len(slack.limited) == 3

        class Answer:  # what a response URL answers Slack's limit with
            status_code, body = 429, "rate_limited"

        async def respond(**message: object) -> Answer:
            return Answer()

        surface.respond = respond  # type: ignore[assignment]
        with pytest.raises(PlatformRefused):
            await surface.tell(words.problem(ValueError("z"), request="r"))
        assert throttled._value.get() == 4
    Pace().throttled()  # without metrics there is nothing to count in, and no error
