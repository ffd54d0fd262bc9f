"""The Slack adapter end to end: signed requests to the real web app, a fake Slack on loopback
(the harness is in :mod:`tests.bot.adapters.slack.harness`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.values import Caller
from engines import EngineUnavailable, FakeEngine, GenerationRequest
from storage import SessionKey
from tests.bot.adapters.slack.harness import (
    TOKEN,
    Bot,
    config,
    event_body,
    fences_balanced,
    reply,
    running,
    sign,
)
from tests.bot.conftest import fenced
from tests.fakes.openai_server import OpenAIServer
from tests.fakes.slack_api import BOT_ID, BOT_USER, TEAM, FakeSlack

# -- starting a session -------------------------------------------------------------------------


async def test_code_command_acks_at_once_then_parent_thread_and_code(
    bot: Bot, engine: FakeEngine
) -> None:
    engine.delay = 0.5
    status, body, elapsed = await bot.command("/code", "python model:fake:echo say &lt;hi&gt;")
    assert status == 200 and body == "" and elapsed < engine.delay  # acknowledged before work
    await bot.settle()

    [parent] = bot.slack.top_level("C1")
    assert "<@U1>" in parent.body() and "*Python*" in parent.body() and "fake:echo" in parent.body()
    assert "say &lt;hi&gt;" in parent.body()  # escaped for mrkdwn
    assert engine.requests[0].messages[-1].content == "say <hi>"  # plain text for the model
    [version] = bot.slack.thread("C1", parent.ts)
    assert "Version 1 of #1" in version.body() and "```python\nprint('hi')\n```" in version.body()
    assert "Here it is." in version.body()
    if bot.app.runs.can_run:  # Run and Test only where the sandbox works (Python is testable)
        assert version.action_ids() == [
            "codethread_run", "codethread_input", "codethread_test", "codethread_download",
            "codethread_delete",
        ]  # fmt: skip
    else:
        assert version.action_ids() == ["codethread_download", "codethread_delete"]
    session = await bot.app.service.find(
        SessionKey(platform="slack", workspace=TEAM, channel="C1", thread=parent.ts)
    )
    assert session is not None and session.owner == "U1" and session.language == "python"
    assert bot.count("command_code") == 1


async def test_without_native_streaming_one_message_is_edited_about_once_per_interval(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.slack.fail("chat.startStream", "unknown_method")  # an older workspace: remembered
    code = "\n".join(f"line_{i} = {i}" for i in range(40))
    engine.responder = lambda r: fenced(code, note="Streaming.")
    engine.chunk_size, engine.delay = 8, 0.6
    parent = await bot.start_session()

    [version] = bot.slack.thread("C1", parent.ts)
    assert len(bot.slack.calls_to("chat.startStream")) == 1
    posts = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    updates = [c for c in bot.slack.calls_to("chat.update") if c.params["ts"] == version.ts]
    assert len(posts) == 1 and len(updates) >= 3  # one message, edited while it streamed
    assert all(c.params["ts"] == version.ts for c in bot.slack.calls_to("chat.update"))
    streamed = [u.params["blocks"][0]["text"] for u in updates[:-1]]
    assert all("Writing version 1 with" in text and fences_balanced(text) for text in streamed)
    gaps = [b.at - a.at for a, b in itertools.pairwise(updates[:-1])]
    assert min(gaps) >= 0.05 * 0.8  # the throttle (edit_interval=0.05 in these tests)
    assert len(updates) < len(code) / engine.chunk_size  # far fewer edits than chunks
    assert f"```python\n{code}\n```" in version.body()
    engine.delay = 0.0
    await bot.event(reply(parent, "again"))
    await bot.settle()
    assert len(bot.slack.calls_to("chat.startStream")) == 1  # not asked again in the workspace
    assert len(bot.slack.thread("C1", parent.ts)) == 2


async def test_mention_starts_a_session_the_same_way(bot: Bot) -> None:
    text = f"<@{BOT_USER}> rust reverse a string"
    event = {"type": "app_mention", "channel": "C1", "user": "U1", "text": text, "ts": "1.1"}
    assert await bot.event(event) == 200
    assert await bot.event({**event, "type": "message"}) == 200  # the same message, top level
    await bot.settle()

    [parent] = bot.slack.top_level("C1")
    assert "*Rust*" in parent.body() and "reverse a string" in parent.body()
    assert len(bot.slack.thread("C1", parent.ts)) == 1


async def test_empty_code_opens_the_form_and_submitting_it_starts_a_session(bot: Bot) -> None:
    status, body, _ = await bot.command("/code", "")
    assert status == 200 and body == ""
    await bot.settle()
    [opened] = bot.slack.calls_to("views.open")
    view = opened.params["view"]
    assert opened.params["trigger_id"].startswith("trigger-") and view["type"] == "modal"
    selects = {b["block_id"]: b["element"] for b in view["blocks"]}
    assert selects["language"]["initial_option"]["value"] == "python"
    assert "fake:echo" in [o["value"] for o in selects["model"]["options"]]
    assert bot.slack.top_level("C1") == []

    values = {
        "language": {"value": {"type": "static_select", "selected_option": {"value": "go"}}},
        "model": {"value": {"type": "static_select", "selected_option": {"value": "fake:echo"}}},
        "prompt": {"value": {"type": "plain_text_input", "value": "a <tiny> web server"}},
    }
    submitted = {**view, "state": {"values": values}}
    payload = {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U7"}}
    status, body = await bot.interact({**payload, "view": submitted, "api_app_id": "A1"})
    assert status == 200 and body == ""  # the form closes
    await bot.settle()
    [parent] = bot.slack.top_level("C1")
    assert "<@U7>" in parent.body() and "*Go*" in parent.body()
    assert "a &lt;tiny&gt; web server" in parent.body()
    assert len(bot.slack.thread("C1", parent.ts)) == 1


async def test_a_refused_form_stays_open_with_the_reason(bot: Bot) -> None:
    await bot.command("/code", "")
    await bot.settle()
    [opened] = bot.slack.calls_to("views.open")
    values = {"prompt": {"value": {"type": "plain_text_input", "value": "   "}}}
    submitted = {**opened.params["view"], "state": {"values": values}}
    payload = {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U7"}}
    status, body = await bot.interact({**payload, "view": submitted, "api_app_id": "A1"})
    assert status == 200
    answer = json.loads(body)
    assert (
        answer["response_action"] == "errors"
        and "Tell me what the code" in answer["errors"]["prompt"]
    )
    await bot.settle()
    assert bot.slack.top_level("C1") == []


async def test_unknown_language_or_model_is_an_ephemeral_list_of_choices(bot: Bot) -> None:
    await bot.command("/code", "language:cobol print hello")
    await bot.command("/code", "model:nope print hello")
    await bot.settle()
    answers = [body for _, body in bot.slack.responses]
    assert all(a["response_type"] == "ephemeral" for a in answers)
    assert "Unknown language 'cobol'. Choose one of: python, javascript" in answers[0]["text"]
    assert "Unknown model 'nope'. Choose one of:" in answers[1]["text"]
    assert "gpt-6.1-terra" in answers[1]["text"]
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_not_in_channel_is_explained(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", "not_in_channel")
    await bot.command("/code", "say hi")
    await bot.settle()
    [(_, answer)] = bot.slack.responses
    assert "/invite @codethread" in answer["text"]


async def test_a_refused_first_turn_leaves_nothing_behind(
    tmp_path: Path, slack: FakeSlack, engine: FakeEngine
) -> None:
    settings = dataclasses.replace(config(tmp_path, slack), rate_limit_per_minute=1)
    async with running(settings, slack, engine) as bot:
        await bot.start_session("first")
        await bot.command("/code", "second")
        await bot.settle()
        assert len(await bot.app.service.list_sessions(_caller("U1"))) == 1
    [parent] = slack.top_level("C1")
    assert "first" in parent.body()
    assert "faster than the limit" in slack.responses[-1][1]["text"]


async def test_slack_rate_limit_is_waited_out(bot: Bot) -> None:
    bot.slack.rate_limit("chat.update", retry_after=0)
    parent = await bot.start_session()
    [version] = bot.slack.thread("C1", parent.ts)
    assert "print('hi')" in version.body()


# -- adjusting ----------------------------------------------------------------------------------


async def test_reply_adjusts_the_current_version(bot: Bot, engine: FakeEngine) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    engine.responder = lambda r: next(answers)
    parent = await bot.start_session("write f")

    assert await bot.event(reply(parent, f"<@{BOT_USER}> return 2 &amp; be quick")) == 200
    await bot.settle()

    last = engine.requests[-1].messages
    assert "return 1" in last[-2].content and last[-1].content == "return 2 & be quick"
    first, second = bot.slack.thread("C1", parent.ts)
    assert "Version 1" in first.body() and "return 1" in first.body()
    assert "Version 2" in second.body() and "return 2" in second.body()


async def test_reply_through_the_openai_compatible_engine(
    tmp_path: Path, slack: FakeSlack, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = dataclasses.replace(config(tmp_path, slack), model="openai:test-model")
    async with running(settings, slack, None) as bot:
        parent = await bot.start_session("count the words")
        await bot.event(reply(parent, "skip empty lines"))
        await bot.settle()
    first, second = slack.thread("C1", parent.ts)
    assert "# fake-model version 1" in first.body() and "count the words" in first.body()
    assert "# built on version 1" in second.body() and "skip empty lines" in second.body()


async def test_retries_and_repeated_events_answer_once(bot: Bot, engine: FakeEngine) -> None:
    form = urlencode(
        {"team_id": TEAM, "channel_id": "C1", "user_id": "U1", "command": "/code",
         "text": "say hi", "response_url": bot.slack.response_url("x"), "trigger_id": "T1"}
    )  # fmt: skip
    for retry in (None, 1):  # the same command delivered twice (same one-time trigger_id)
        status, _, _ = await bot.post(form, "application/x-www-form-urlencoded", retry=retry)
        assert status == 200
    await bot.settle()
    [parent] = bot.slack.top_level("C1")
    message = reply(parent, "shorter please")
    assert await bot.event(message, event_id="EvSame") == 200
    assert await bot.event(message, event_id="EvSame", retry=1) == 200  # Slack's retry
    assert await bot.event(message, event_id="EvSame") == 200  # a plain redelivery
    mention = {**message, "type": "app_mention"}  # the same message as an app_mention
    assert await bot.event(mention, event_id="EvOther") == 200
    await bot.settle()

    assert len(engine.requests) == 2
    assert len(bot.slack.thread("C1", parent.ts)) == 2
    # the command's copy, the message's two, and the mention (the message's other event)
    assert bot.count("duplicate") == 4 and bot.count("retry") == 1


async def test_ignore_rules(bot: Bot, engine: FakeEngine) -> None:
    parent = await bot.start_session()
    before = len(bot.slack.calls)
    for event in [
        reply(parent, "from a bot", user="U9", bot_id="B9"),
        reply(parent, "from me", user=BOT_USER, bot_id=BOT_ID),
        reply(parent, "edited", subtype="message_changed"),
        reply(parent, "gone", subtype="message_deleted"),
        reply(parent, "joined", subtype="channel_join"),
        {**reply(parent, "top level"), "thread_ts": None},
        {**reply(parent, "another thread"), "thread_ts": "1699999999.000001"},
    ]:
        assert await bot.event({k: v for k, v in event.items() if v is not None}) == 200
    await bot.settle()
    assert len(engine.requests) == 1 and len(bot.slack.calls) == before


async def test_mention_in_a_thread_that_is_no_session_gets_a_hint(bot: Bot) -> None:
    event = {
        "type": "app_mention",
        "channel": "C1",
        "user": "U1",
        "text": f"<@{BOT_USER}> help",
        "ts": "1.2",
        "thread_ts": "1.1",
    }
    await bot.event(event)
    await bot.settle()
    [hint] = bot.slack.ephemerals
    assert hint["user"] == "U1" and hint["thread_ts"] == "1.1"
    assert "no snippet session here" in hint["text"]


async def test_a_mention_in_a_thread_arriving_twice_is_answered_once(
    bot: Bot, engine: FakeEngine
) -> None:
    parent = await bot.start_session()
    mention = reply(parent, f"<@{BOT_USER}> louder")
    elsewhere = {**reply(parent, f"<@{BOT_USER}> help"), "thread_ts": "1.1"}  # no session
    for event in (mention, elsewhere):  # the message event first, then the app_mention
        assert await bot.event(event) == 200
        assert await bot.event({**event, "type": "app_mention"}) == 200
    await bot.settle()
    assert len(engine.requests) == 2 and len(bot.slack.thread("C1", parent.ts)) == 2
    [hint] = bot.slack.ephemerals
    assert hint["thread_ts"] == "1.1" and "no snippet session here" in hint["text"]


# -- failures -----------------------------------------------------------------------------------


async def test_engine_failure_is_a_message_in_the_thread_and_retry_works(
    bot: Bot, engine: FakeEngine
) -> None:
    engine.fail = EngineUnavailable("The model server is down.")
    parent = await bot.start_session("sum a list")
    [failed] = bot.slack.thread("C1", parent.ts)
    assert "The model server is down." in failed.body() and "Traceback" not in failed.body()
    assert failed.action_ids() == ["codethread_retry", "codethread_delete"]

    engine.fail = None
    await bot.click("codethread_retry", failed)
    await bot.click("codethread_retry", failed)  # a second click on the same message: refused
    _, version = bot.slack.thread("C1", parent.ts)
    assert "Version 1" in version.body()
    assert engine.requests[-1].messages[-1].content == "sum a list"  # the kept request
    assert len(engine.requests) == 2
    [again] = bot.slack.ephemerals
    assert "Nothing to retry" in again["text"] and again["thread_ts"] == parent.ts


async def test_unexpected_error_is_a_plain_message(bot: Bot, engine: FakeEngine) -> None:
    def broken(request: object) -> str:
        raise RuntimeError("secret internals")

    engine.responder = broken
    await bot.command("/code", "say hi")
    await bot.settle()
    [parent] = bot.slack.top_level("C1")
    [answer] = bot.slack.thread("C1", parent.ts)  # the turn's own message says it, not "writing"
    assert "Something went wrong on my side" in answer.body()
    assert "secret internals" not in answer.body() and "Writing" not in answer.body()


# -- long snippets ------------------------------------------------------------------------------


async def test_long_snippet_goes_to_the_thread_as_a_file(bot: Bot, engine: FakeEngine) -> None:
    code = "\n".join(f'echo "line {i} of a long script"' for i in range(300))
    engine.responder = lambda r: fenced(code, lang="bash")
    parent = await bot.start_session("bash print many lines")

    preview, file_message = bot.slack.thread("C1", parent.ts)
    assert "more lines in the file" in preview.body() and fences_balanced(preview.body())
    runs = ["codethread_run", "codethread_input"] if bot.app.runs.can_run else []  # no Test
    assert len(preview.body()) < 4000 and preview.action_ids() == [
        *runs,
        "codethread_download",
        "codethread_delete",
    ]
    [url] = bot.slack.calls_to("files.getUploadURLExternal")
    assert url.params["filename"] == "snippet.sh" and url.params["snippet_type"] == "shell"
    [complete] = bot.slack.calls_to("files.completeUploadExternal")
    assert complete.params["channel_id"] == "C1" and complete.params["thread_ts"] == parent.ts
    assert bot.slack.uploads[complete.params["files"][0]["id"]] == code.encode()
    assert file_message.files


# -- /snippets and buttons ----------------------------------------------------------------------


async def test_snippets_are_scoped_to_the_caller_and_delete_is_owner_only(bot: Bot) -> None:
    mine = await bot.start_session("first of mine")
    await bot.start_session("second of mine")
    theirs = await bot.start_session("someone else's", user="U2")
    bot.slack.responses.clear()

    for text, who in [("", {}), ("", {"team": "T0OTHER"}), ("delete 1", {"user": "U2"})]:
        await bot.command("/snippets", text, **who)
        await bot.settle()  # one at a time, so the answers come in order
    await bot.command("/snippets", "show 3")
    await bot.settle()
    listing, elsewhere, refused, hidden = (body for _, body in bot.slack.responses)
    assert all(r["response_type"] == "ephemeral" for r in (listing, elsewhere, refused, hidden))
    text = json.dumps(listing["blocks"])
    assert "first of mine" in text and "second of mine" in text and "someone else" not in text
    link = f"https://fake-team.slack.test/archives/C1/p{mine.ts.replace('.', '')}"
    assert link in text
    assert "no snippets here yet" in elsewhere["text"]
    assert "belongs to someone else" in refused["text"]
    assert "belongs to someone else" in hidden["text"]
    assert await bot.app.service.get(1) is not None

    [v_theirs] = bot.slack.thread("C1", theirs.ts)
    await bot.click("codethread_delete", v_theirs, user="U1")  # not the owner
    [refusal] = bot.slack.ephemerals
    assert refusal["user"] == "U1" and "belongs to someone else" in refusal["text"]
    assert await bot.app.service.get(3) is not None

    [v_mine] = bot.slack.thread("C1", mine.ts)
    await bot.click("codethread_delete", v_mine, user="U1")
    assert bot.slack.thread("C1", mine.ts) == []  # the bot's messages are gone
    assert "was deleted by <@U1>" in bot.slack.messages[("C1", mine.ts)].body()
    assert [s.id for s in await bot.app.service.list_sessions(_caller("U1"))] == [2]


async def test_snippets_show_and_run(bot: Bot) -> None:
    await bot.start_session("say hi")
    for text in ("show #1", "run 1", "show one", "frobnicate"):
        await bot.command("/snippets", text)
        await bot.settle()
    shown, ran, bad, usage = (body for _, body in bot.slack.responses)
    assert all(r["response_type"] == "ephemeral" for r in (shown, ran, bad, usage))
    [section] = [b for b in shown["blocks"] if b["type"] != "actions"]  # mrkdwn, no tag
    assert section["type"] == "section" and "```\nprint('hi')\n```" in section["text"]["text"]
    if bot.app.runs.can_run:
        assert ran["text"] == "Run of version 1 of #1 passed"
        assert "```\nhi\n```" in ran["blocks"][0]["text"]["text"]
    else:
        assert ran["text"] == bot.app.runs._disabled
    assert "Give a snippet number" in bad["text"]
    assert "/snippets show ID" in usage["text"]
    assert len(bot.slack.thread("C1", bot.slack.top_level("C1")[0].ts)) == 1  # nothing posted


async def test_without_running_there_are_no_run_or_test_buttons(
    tmp_path: Path, slack: FakeSlack, engine: FakeEngine
) -> None:
    async with running(config(tmp_path, slack, run_snippets=False), slack, engine) as bot:
        assert not bot.app.runs.can_run
        parent = await bot.start_session("say hi")
        [version] = bot.slack.thread("C1", parent.ts)
        assert version.action_ids() == ["codethread_download", "codethread_delete"]
        await bot.command("/snippets", "run 1")
        await bot.settle()
        for action in ("codethread_run", "codethread_test"):  # buttons of an older message
            await bot.click(action, version, value="1:1")
    [(_, ran)] = slack.responses
    assert ran["text"] == "Running snippets is turned off here."
    run, test = slack.ephemerals
    assert run["text"] == test["text"] == "Running snippets is turned off here."
    assert run["thread_ts"] == parent.ts and len(slack.thread("C1", parent.ts)) == 1


# -- Run, Test and Fix in the real sandbox ------------------------------------------------------

TESTS = """\
import unittest
from snippet import add

class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""
BROKEN = "def add(a, b):\n    return a - b"
FIXED = "def add(a, b):\n    return a + b"


def is_tests_request(request: GenerationRequest) -> bool:
    return request.messages[0].content.startswith("You write unit tests")


def script(engine: FakeEngine, *codes: str, tests: str = TESTS) -> None:
    """Versions answer ``codes`` in turn; a request for unit tests answers ``tests``."""
    answers = iter(codes)
    engine.responder = lambda r: fenced(tests) if is_tests_request(r) else fenced(next(answers))


async def test_run_button_posts_the_result_in_the_thread(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    script(engine, "print(1 + 2)")
    parent = await bot.start_session("add one and two")
    [version] = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_run", version, user="U2")  # anyone in the thread may run it
    _, result = bot.slack.thread("C1", parent.ts)
    assert result.text == "Run of version 1 of #1 passed"
    assert "exit 0" in result.body() and "```text\n3\n```" in result.body()
    assert result.action_ids() == []  # nothing to fix
    assert bot.count("action_run") == 1


async def test_a_waiting_run_shows_its_place_in_line(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    script(engine, "print(1 + 2)")
    parent = await bot.start_session("add one and two")
    [version] = bot.slack.thread("C1", parent.ts)
    pool = bot.app.runs.pool
    assert pool is not None
    async with contextlib.AsyncExitStack() as busy:  # every slot taken
        for _ in range(pool.size):
            await busy.enter_async_context(pool.slot())
        await bot.click("codethread_run", version, settle=False)
        for _ in range(200):
            if len(bot.slack.thread("C1", parent.ts)) == 2:
                break
            await asyncio.sleep(0.01)
        _, waiting = bot.slack.thread("C1", parent.ts)
        assert "you are #1 in line" in waiting.body()
    await bot.settle()
    _, result = bot.slack.thread("C1", parent.ts)
    assert result.ts == waiting.ts and "```text\n3\n```" in result.body()  # the same message


async def test_test_button_posts_the_tests_and_their_result(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    script(engine, FIXED)
    parent = await bot.start_session("add two numbers")
    [version] = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_test", version, user="U2")
    asked = engine.requests[-1]
    assert is_tests_request(asked) and FIXED in asked.messages[-1].content
    _, result = bot.slack.thread("C1", parent.ts)
    assert result.text == "Tests of version 1 of #1 passed"
    assert f"```python\n{TESTS}```" in result.body()
    assert "Ran 1 test" in result.body() and "OK" in result.body()
    assert result.action_ids() == []
    assert bot.slack.calls_to("files.completeUploadExternal") == []
    posts = [c.params["text"] for c in bot.slack.calls_to("chat.postMessage")]
    [writing] = [text for text in posts if "Writing unit tests" in text]
    assert "version 1" in writing  # shown while the model wrote the tests, then edited
    assert bot.count("action_test") == 1


async def test_long_tests_go_to_the_thread_as_a_file(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    many = TESTS + "".join(
        f"\n    def test_add_{i}(self):\n        self.assertEqual(add({i}, 1), {i + 1})\n"
        for i in range(40)
    )
    script(engine, FIXED, tests=many)
    parent = await bot.start_session("add two numbers")
    [version] = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_test", version)
    _, result, file_message = bot.slack.thread("C1", parent.ts)
    assert "Ran 41 tests" in result.body() and "test_add_30(" not in result.body()
    assert "more lines in `test_snippet.py`, attached" in result.body()
    assert len(result.body()) < 4000 and fences_balanced(result.body())
    [url] = bot.slack.calls_to("files.getUploadURLExternal")
    assert url.params["filename"] == "test_snippet.py" and url.params["snippet_type"] == "python"
    [complete] = bot.slack.calls_to("files.completeUploadExternal")
    assert bot.slack.uploads[complete.params["files"][0]["id"]] == many.strip().encode()
    assert file_message.files


async def test_failed_tests_then_fix_makes_the_next_version_from_the_failure(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    script(engine, BROKEN, FIXED)
    parent = await bot.start_session("add two numbers")
    [v1] = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_test", v1)
    _, failed = bot.slack.thread("C1", parent.ts)
    assert failed.text == "Tests of version 1 of #1 failed"
    assert "AssertionError: -1 != 5" in failed.body()
    assert failed.action_ids() == ["codethread_fix"]

    await bot.click("codethread_fix", failed, user="U2")  # anyone in the thread
    feedback = engine.requests[-1].messages[-1].content
    assert "its unit tests failed" in feedback and "AssertionError: -1 != 5" in feedback
    assert "class AddTest" in feedback and "Fix the code (not the tests)" in feedback
    assert "return a - b" in engine.requests[-1].messages[-2].content  # built on version 1
    _, _, v2 = bot.slack.thread("C1", parent.ts)
    assert "Version 2 of #1" in v2.body() and "return a + b" in v2.body()
    assert v2.action_ids() == [
        "codethread_run", "codethread_input", "codethread_test", "codethread_diff",
        "codethread_download", "codethread_delete",
    ]  # fmt: skip
    assert bot.count("action_fix") == 1

    await bot.click("codethread_fix", failed)  # the same failure again: version 1 is old now
    await bot.click("codethread_test", v1)
    again, test_old = bot.slack.ephemerals
    assert "Fix works on the latest version" in again["text"]
    assert "Test works on the latest version" in test_old["text"]
    assert again["thread_ts"] == parent.ts and "use the buttons of version 2" in again["text"]
    assert len(engine.requests) == 3 and len(bot.slack.thread("C1", parent.ts)) == 3

    await bot.click("codethread_test", v2)
    _, _, _, passed = bot.slack.thread("C1", parent.ts)
    assert passed.text == "Tests of version 2 of #1 passed"


async def test_fix_when_the_latest_run_passed_says_so(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    script(engine, BROKEN)
    parent = await bot.start_session("add two numbers")
    [version] = bot.slack.thread("C1", parent.ts)
    await bot.click("codethread_test", version)
    await bot.click("codethread_run", version)  # the program itself runs fine
    _, failed, ran = bot.slack.thread("C1", parent.ts)
    assert ran.text == "Run of version 1 of #1 passed" and "(no output)" in ran.body()

    await bot.click("codethread_fix", failed)
    [told] = bot.slack.ephemerals
    assert "latest run of this version passed; there is nothing to fix" in told["text"]
    assert len(bot.slack.thread("C1", parent.ts)) == 3 and len(engine.requests) == 2


async def test_tests_answer_without_code_leaves_nothing_in_the_thread(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    engine.responder = lambda r: "I'd rather not." if is_tests_request(r) else fenced(FIXED)
    parent = await bot.start_session("add two numbers")
    [version] = bot.slack.thread("C1", parent.ts)
    await bot.click("codethread_test", version)
    [told] = bot.slack.ephemerals
    assert "without a test file" in told["text"] and told["user"] == "U1"
    assert bot.slack.thread("C1", parent.ts) == [version]  # the "writing tests" note is gone
    assert bot.slack.calls_to("chat.delete")


async def test_fix_with_nothing_to_fix_is_explained(bot: Bot, engine: FakeEngine) -> None:
    parent = await bot.start_session("say hi")
    [version] = bot.slack.thread("C1", parent.ts)
    await bot.click("codethread_fix", version, value="1:1")  # no run of version 1 yet
    [told] = bot.slack.ephemerals
    assert told["user"] == "U1" and told["thread_ts"] == parent.ts
    assert "Run or test this version first" in told["text"]
    assert len(engine.requests) == 1 and len(bot.slack.thread("C1", parent.ts)) == 1


# -- security and modes -------------------------------------------------------------------------


async def test_bad_signature_is_401_and_nothing_is_posted(bot: Bot, engine: FakeEngine) -> None:
    form = urlencode({"command": "/code", "text": "hi", "user_id": "U1", "channel_id": "C1"})
    status, _, _ = await bot.post(form, "application/x-www-form-urlencoded", secret="wrong")
    assert status == 401
    stale = {"X-Slack-Request-Timestamp": "1000000000", "Content-Type": "application/json"}
    body = json.dumps(event_body({"type": "app_mention"}, event_id="Ev0"))
    stale["X-Slack-Signature"] = sign(body, "1000000000")
    response = await bot.http.post("/slack/events", data=body, headers=stale)
    assert response.status == 401
    await bot.settle()
    assert [c.method for c in bot.slack.calls] == ["auth.test"]  # the start's check alone
    assert engine.requests == []
    odd = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=x"}
    assert (await bot.http.post("/slack/events", data=b"{", headers=odd)).status == 401
    signed_junk = "not json"
    status, _, _ = await bot.post(signed_junk, "application/json")
    assert status in (400, 401)

    challenge = json.dumps({"type": "url_verification", "challenge": "abc", "token": "x"})
    status, text, _ = await bot.post(challenge, "application/json")
    assert status == 200 and "abc" in text


async def test_socket_mode(tmp_path: Path, slack: FakeSlack, engine: FakeEngine) -> None:
    settings = {"slack_signing_secret": None, "slack_app_token": "xapp-test"}
    async with running(config(tmp_path, slack, **settings), slack, engine) as bot:
        assert bot.adapter.routes() == []  # no HTTP endpoint in Socket Mode
        await slack.connected()
        command = {
            "team_id": TEAM,
            "channel_id": "C1",
            "user_id": "U1",
            "command": "/code",
            "text": "python say hi",
            "response_url": slack.response_url("socket"),
            "trigger_id": "t",
        }
        ack = await slack.send_envelope("slash_commands", command)
        assert "envelope_id" in ack
        await bot.settle()
        [parent] = slack.top_level("C1")
        message = {**reply(parent, "louder"), "team": TEAM}
        for attempt in (0, 1):  # a redelivery of the same event id
            await slack.send_envelope(
                "events_api", event_body(message, event_id="EvS"), retry_attempt=attempt
            )
        await bot.settle()
    assert [c.token for c in slack.calls_to("apps.connections.open")] == ["xapp-test"]
    assert len(slack.thread("C1", parent.ts)) == 2 and len(engine.requests) == 2
    assert all(c.token == TOKEN for c in slack.calls_to("chat.postMessage"))


# -- small pieces -------------------------------------------------------------------------------


def _caller(user: str) -> Caller:
    return Caller(platform="slack", workspace=TEAM, user=user, channel="C1")


# The bot scope each Web API method the adapter calls needs (None: no scope, or an app token).
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_delete": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_startStream": "chat:write",
    "chat_appendStream": "chat:write",
    "chat_stopStream": "chat:write",
    "assistant_threads_setStatus": "assistant:write",
    "assistant_threads_setTitle": "assistant:write",
    "assistant_threads_setSuggestedPrompts": "assistant:write",
    "chat_getPermalink": None,
    "auth_test": None,  # at start: is the bot token accepted (/readyz)
    "conversations_replies": "channels:history",  # groups:history, im:history elsewhere
    "views_open": None,
    "files_info": "files:read",  # and downloading url_private: the files people post
    "files_upload_v2": "files:write",
    "files_delete": "files:write",
}


def test_manifest_has_exactly_what_the_adapter_uses() -> None:
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[4]
    manifest = yaml.safe_load((root / "slack" / "manifest.yaml").read_text())
    source = "".join(p.read_text() for p in (root / "bot" / "adapters" / "slack").glob("*.py"))
    called = set(re.findall(r"self\.client\.(\w+)\(", source))
    assert called == set(METHOD_SCOPES)
    needed = {scope for scope in METHOD_SCOPES.values() if scope}
    needed |= {"commands", "app_mentions:read", "groups:history", "im:history"}  # and events
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert "url_private" in source and "files:read" in needed  # downloads need it too
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert commands == set(re.findall(r'bolt\.command\("(/\w+)"\)', source))
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    handled = set(re.findall(r'bolt\.event\("(\w+)"\)', source))
    assert handled == {"app_mention", "message", "assistant_thread_started"}
    messages = {"message.channels", "message.groups", "message.im"}  # "message" in each place
    assert events == {"app_mention", "assistant_thread_started", *messages}
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["assistant_view"]["assistant_description"]
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


async def test_diff_revert_and_download_from_the_thread_and_snippets(
    bot: Bot, engine: FakeEngine
) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    engine.responder = lambda r: next(answers)
    parent = await bot.start_session("write f")
    assert await bot.event(reply(parent, "return 2")) == 200
    await bot.settle()
    _, second = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_diff", second, user="U2")  # anyone in the thread
    diff = bot.slack.thread("C1", parent.ts)[-1]
    assert "Version 1 → 2 of #1" in diff.body() and "+    return 2" in diff.body()
    await bot.click("codethread_download", second)
    [complete] = bot.slack.calls_to("files.completeUploadExternal")
    assert bot.slack.uploads[complete.params["files"][0]["id"]] == b"def f():\n    return 2"

    status, _, _ = await bot.command("/snippets", "diff 1 1 2")
    await bot.settle()
    assert status == 200 and "-    return 1" in bot.slack.responses[-1][1]["text"] + str(
        bot.slack.responses[-1][1].get("blocks")
    )
    status, _, _ = await bot.command("/snippets", "show 1 1")  # an older version: Revert
    await bot.settle()
    shown = bot.slack.responses[-1][1]
    [buttons] = [b for b in shown["blocks"] if b["type"] == "actions"]
    revert = next(e for e in buttons["elements"] if e["action_id"] == "codethread_revert")
    assert revert["value"] == "revert:1:1"
