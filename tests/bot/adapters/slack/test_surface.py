"""Block Kit rendering of views and Slack's refusals, without a workspace."""

from __future__ import annotations

import dataclasses

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.adapters.slack.surface import LIMIT, blocks, escape, refusals
from bot.languages import Languages
from bot.present import PlatformRefused, words
from bot.values import Action, RunReport
from sandbox import RunResult
from storage import Session, SessionKey, Version
from tests.fakes.slack_api import TEAM

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
