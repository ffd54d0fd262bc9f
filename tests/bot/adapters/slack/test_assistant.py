"""Slack's AI-app surface: the assistant pane and direct messages, where each thread is a
session; suggested prompts, the thread's status and title."""

from __future__ import annotations

import asyncio

from bot.present import words
from engines import FakeEngine
from storage import SessionKey
from tests.bot.adapters.slack.harness import Bot, direct
from tests.bot.conftest import fenced
from tests.fakes.slack_api import TEAM

PANE = "1729999327.187299"  # an assistant thread's ts


def key(thread: str, channel: str = "D1") -> SessionKey:
    return SessionKey(platform="slack", workspace=TEAM, channel=channel, thread=thread)


async def test_a_new_assistant_thread_is_offered_prompts(bot: Bot) -> None:
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U1",
            "context": {"channel_id": "C1", "team_id": TEAM},
            "channel_id": "D1",
            "thread_ts": PANE,
        },
        "event_ts": "1729999327.2",
    }
    assert await bot.event(started) == 200
    await bot.settle()
    [offered] = bot.slack.suggested
    assert (offered["channel_id"], offered["thread_ts"]) == ("D1", PANE)
    assert offered["title"] == words.SUGGESTIONS_TITLE
    prompts = offered["prompts"]
    assert 1 < len(prompts) <= 4 and prompts[0]["message"].startswith("python ")
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_message_in_the_pane_starts_a_session_and_the_next_is_its_turn(
    bot: Bot, engine: FakeEngine
) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    engine.responder = lambda r: next(answers)
    engine.delay = 0.2
    assert await bot.event(direct("python write f", thread=PANE)) == 200
    await bot.settle()

    session = await bot.app.service.find(key(PANE))
    assert session is not None and session.owner == "U1" and session.language == "python"
    [start] = bot.slack.calls_to("chat.startStream")
    assert (start.params["channel"], start.params["thread_ts"]) == ("D1", PANE)
    [writing] = bot.slack.statuses  # the status while it writes, cleared by the answer
    assert writing["status"].startswith("✏️ Writing version 1 with fake:echo")
    [title] = bot.slack.titles
    assert (title["thread_ts"], title["title"]) == (PANE, session.title)
    assert bot.slack.calls_to("chat.postMessage") == []  # no parent post: the pane has one

    await bot.event(direct("return 2", thread=PANE))
    await bot.settle()
    first, second = bot.slack.thread("D1", PANE)
    assert "Version 1 of #1" in first.body() and "Version 2 of #1" in second.body()
    assert "return 2" in second.body() and len(bot.slack.titles) == 1


async def test_a_direct_message_outside_a_thread_starts_a_session_in_its_thread(
    bot: Bot,
) -> None:
    message = direct("say hi", thread=None)
    await bot.event(message)
    await bot.event(message)  # a redelivery: answered once
    await bot.settle()
    assert await bot.app.service.find(key(message["ts"])) is not None
    [version] = bot.slack.thread("D1", message["ts"])
    assert "Version 1 of #1" in version.body() and "print('hi')" in version.body()


async def test_quick_messages_in_a_new_thread_make_one_session_in_order(
    bot: Bot, engine: FakeEngine
) -> None:
    engine.responder = lambda r: fenced(f"print({r.messages[-1].content!r})")
    for text in ("first", "second", "third"):
        await bot.event(direct(text, thread=PANE))
    await bot.settle()
    sessions = await bot.app.service.list_sessions(bot.caller("U1", "D1"))
    assert [s.version_count for s in sessions] == [3]
    first, second, third = bot.slack.thread("D1", PANE)  # in the order they were sent
    assert "Version 1" in first.body() and "print('first')" in first.body()
    assert "Version 2" in second.body() and "print('second')" in second.body()
    assert "Version 3" in third.body() and "print('third')" in third.body()


async def test_a_waiting_turn_shows_as_the_thread_status(bot: Bot, engine: FakeEngine) -> None:
    engine.delay = 0.3
    await bot.event(direct("first", thread=PANE))
    for _ in range(200):  # the first answer under way (its session stored)
        if await bot.app.service.find(key(PANE)) is not None:
            break
        await asyncio.sleep(0.01)
    await bot.event(direct("second", thread=PANE))
    await bot.settle()
    shown = [s["status"] for s in bot.slack.statuses]
    assert any(s.startswith("⏳ Waiting for 1 earlier request") for s in shown)
    assert bot.slack.calls_to("chat.postMessage") == []  # no message for the wait
    assert len(bot.slack.thread("D1", PANE)) == 2


async def test_after_a_restart_the_thread_is_still_its_session(bot: Bot) -> None:
    await bot.event(direct("say hi", thread=PANE))
    await bot.settle()
    bot.adapter._known.clear()  # what a restarted process knows
    await bot.event(direct("louder", thread=PANE))
    await bot.settle()
    [session] = await bot.app.service.list_sessions(bot.caller("U1", "D1"))
    assert session.version_count == 2


async def test_deleting_a_direct_message_session_leaves_the_notice_in_its_thread(
    bot: Bot,
) -> None:
    message = direct("say hi", thread=None)
    bot.slack.add_user_message("D1", "U1", "say hi", thread_ts=None, ts=message["ts"])
    await bot.event(message)
    await bot.settle()
    [version] = bot.slack.thread("D1", message["ts"])
    await bot.click("codethread_delete", version)
    [notice] = bot.slack.thread("D1", message["ts"])
    assert "was deleted by <@U1>" in notice.body()
    assert bot.slack.messages[("D1", message["ts"])].text == "say hi"  # the person's own


async def test_an_empty_request_is_explained_and_the_next_message_starts_the_session(
    bot: Bot,
) -> None:
    await bot.event(direct("python", thread=PANE))  # a language, but nothing to write
    await bot.settle()
    [told] = bot.slack.ephemerals
    assert told["channel"] == "D1" and "Tell me what the code" in told["text"]
    assert await bot.app.service.find(key(PANE)) is None
    await bot.event(direct("python say hi", thread=PANE))
    await asyncio.wait_for(bot.settle(), 5)
    assert await bot.app.service.find(key(PANE)) is not None
