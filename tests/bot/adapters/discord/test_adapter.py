"""The connection, messages in session threads and DMs, and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import discord
import pytest

from bot.adapters.discord import DiscordAdapter
from bot.app import App, build
from bot.config import Config
from bot.server import make_web_app
from engines import FakeEngine
from storage import SessionKey
from tests.fakes.discord_fakes import (
    ALICE,
    BOB,
    BOT,
    CHANNEL_ID,
    GUILD_ID,
    OTHER_BOT,
    DiscordServer,
    interaction_payload,
    settle,
)

from ...conftest import fenced
from .conftest import EDIT, SEND, THREAD, Bot, Connect, message_id


async def test_start_does_not_publish_the_commands(bot: Bot) -> None:
    assert not [c for c in bot.fake.calls if c.path.endswith("/commands")]  # `discord sync` does


async def test_reply_makes_the_next_version_from_the_current_code(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("write f")
    bot.gateway.thread_create(thread_id)
    reply = bot.gateway.message(thread_id, "return 2 instead")
    await settle()

    last = fake.requests[-1]
    assert "return 1" in last.messages[-2].content  # the current version
    assert last.messages[-1].content == "return 2 instead"
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == reply["id"]  # answers it
    assert "Version 2 of #1" in bot.final(thread_id).content
    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "return 2 instead"]


async def test_replies_are_answered_in_order(bot: Bot, app: App, fake: FakeEngine) -> None:
    fake.delay = 0.02
    fake.responder = lambda r: fenced(f"# after {r.messages[-1].content}")
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    for i in range(6):
        bot.gateway.message(thread_id, f"step {i}", author=ALICE if i % 2 else BOB)
    await settle()

    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["start"] + [f"step {i}" for i in range(6)]


async def test_a_reply_that_waits_shows_its_place_in_line(bot: Bot, fake: FakeEngine) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    fake.delay = 0.2
    bot.gateway.message(thread_id, "first")
    bot.gateway.message(thread_id, "second")
    await settle()

    in_thread = bot.fake.in_channel(thread_id)
    [waiting] = [c for c in in_thread if c.key == SEND and "Waiting" in c.content]
    assert waiting.content == "⏳ Waiting for 1 earlier request in this thread …"  # "second"
    edits = [c for c in in_thread if c.params.get("message_id") == str(message_id(waiting))]
    assert "Writing version 3" in edits[0].content and "Version 3 of #1" in edits[-1].content


async def test_a_thread_missing_from_the_cache_is_looked_up(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    _, thread_id = await bot.code("first")  # no THREAD_CREATE: the thread is not cached
    for i in range(3):
        bot.gateway.message(thread_id, f"more {i}")
    await settle()
    assert len(bot.fake.calls_to("GET /channels/{channel_id}")) == 1  # one lookup for all
    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["first", "more 0", "more 1", "more 2"]


async def test_a_reply_right_after_the_thread_opens_comes_after_the_first_turn(
    bot: Bot, app: App
) -> None:
    bot.gateway.slash("code", prompt="first")
    thread = await bot.fake.first_call(THREAD)  # the thread exists; the session is being stored
    thread_id = int(thread.params["message_id"])
    bot.gateway.message(thread_id, "right away")
    await settle()
    assert [v.request for v in await app.store.list_versions(1)] == ["first", "right away"]


async def test_ignores_bots_plain_channels_foreign_threads_and_dms(
    bot: Bot, fake: FakeEngine
) -> None:
    _, thread_id = await bot.code("first")
    bot.gateway.thread_create(thread_id)
    foreign = bot.fake.next_id()
    bot.fake.threads[foreign] = {**bot.fake.threads[thread_id], "id": str(foreign)}
    bot.fake.threads[foreign]["owner_id"] = ALICE["id"]
    bot.gateway.thread_create(foreign)
    unused = bot.fake.next_id()  # a thread the bot opened that holds no session
    bot.fake.threads[unused] = {**bot.fake.threads[thread_id], "id": str(unused)}
    bot.gateway.thread_create(unused)
    before, requests = len(bot.fake.calls), len(fake.requests)

    bot.gateway.message(thread_id, "from myself", author=BOT)
    bot.gateway.message(thread_id, "from another bot", author=OTHER_BOT)
    bot.gateway.message(thread_id, "", author=ALICE)  # an image or a sticker
    bot.gateway.message(thread_id, "pinned", kind=6)  # a system message
    bot.gateway.message(CHANNEL_ID, "in the channel itself")
    bot.gateway.message(foreign, "a thread someone else opened")
    bot.gateway.message(unused, "a thread with no session")
    bot.gateway.message(bot.fake.next_id(), "a direct message", guild=False)
    await settle()

    assert len(fake.requests) == requests
    assert bot.fake.calls[before:] == []


async def test_direct_messages_when_allowed(connected: Connect, fake: FakeEngine) -> None:
    bot = await connected(discord_allow_dms=True)
    dm = bot.fake.next_id()
    bot.gateway.message(dm, "before any snippet", guild=False)
    await settle()
    assert "Start one with `/code PROMPT`" in bot.fake.in_channel(dm)[-1].content

    fake.responder = lambda r: fenced(f"# {r.messages[-1].content}")
    bot.gateway.slash("code", prompt="in a dm", channel_id=dm, dm=True)
    await settle()
    bot.gateway.message(dm, "adjust it", guild=False)
    await settle()
    versions = await bot.app.store.list_versions(1)
    assert [v.request for v in versions] == ["in a dm", "adjust it"]
    assert "# adjust it" in bot.fake.in_channel(dm)[-1].content
    [session] = await bot.app.store.list_sessions()
    assert session.key.workspace == "@me" and session.key.channel == str(dm)


async def test_drain_waits_for_the_answers_in_flight(bot: Bot, app: App, fake: FakeEngine) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    fake.delay = 0.3
    bot.gateway.message(thread_id, "slowly")
    await asyncio.sleep(0.05)  # the answer is streaming
    assert "Writing version 2" in bot.final(thread_id).content

    await bot.adapter.drain()
    assert [v.request for v in await app.store.list_versions(1)] == ["start", "slowly"]
    assert "Version 2 of #1" in bot.final(thread_id).content


async def test_closing_mid_answer_marks_it_interrupted(bot: Bot, fake: FakeEngine) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    fake.delay = 5.0
    bot.gateway.message(thread_id, "never finished")
    await asyncio.sleep(0.1)
    assert "Writing version 2" in bot.final(thread_id).content

    await bot.adapter.aclose()
    await bot.adapter.aclose()  # twice is fine (App.aclose calls it again)
    final = bot.final(thread_id)
    assert final.key == EDIT and "interrupted" in final.content


async def test_start_runs_in_the_background_through_discord_api_url(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with DiscordServer() as server:
        config = dataclasses.replace(config, discord_api_url=server.api_url)
        app = await build(config, engine_factory=lambda spec: FakeEngine())
        [adapter] = app.adapters
        try:
            await asyncio.wait_for(adapter.start(), 0.5)  # returns while connecting goes on
            await asyncio.wait_for(server.identified.wait(), 5)
            assert [(m, p) for m, p, _ in server.requests] == [
                ("GET", "/users/@me"),
                ("GET", "/oauth2/applications/@me"),  # no command sync at start
                ("GET", "/gateway/bot"),  # the gateway URL comes from the proxy too
            ]
            assert {auth for _, _, auth in server.requests} == {"Bot test-token"}
            assert server.identify is not None
            intents = discord.Intents(server.identify["d"]["intents"])
            assert intents.guilds and intents.guild_messages and intents.message_content
            assert not intents.dm_messages and not intents.members

            # an interaction's callback goes to the proxy as well
            payload = interaction_payload(
                7,
                4,
                {
                    "id": "1",
                    "name": "code",
                    "type": 1,
                    "options": [{"name": "language", "type": 3, "value": "py", "focused": True}],
                },
                user=ALICE,
                channel={"id": "5", "type": 1, "recipients": [ALICE]},
            )
            await server.dispatch("INTERACTION_CREATE", payload)
            await asyncio.wait_for(server.callback.wait(), 5)
            assert server.requests[-1][:2] == ("POST", "/interactions/7/token-7/callback")
            assert server.bodies[-1]["data"]["choices"][0]["value"] == "python"
        finally:
            await app.aclose()
    assert "test-token" not in caplog.text


async def test_build_makes_the_discord_adapter_when_its_token_is_set(app: App) -> None:
    [adapter] = app.adapters
    assert isinstance(adapter, DiscordAdapter) and adapter.routes() == []
    assert "test-token" not in repr(adapter)
    make_web_app(app)  # no routes of its own to mount


async def test_the_session_key_is_the_thread_under_its_channel(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("keyed")
    key = SessionKey(
        platform="discord", workspace=str(GUILD_ID), channel=str(CHANNEL_ID), thread=str(thread_id)
    )
    session = await app.service.find(key)
    assert session is not None and session.owner == ALICE["id"]


async def test_diff_and_download_buttons(bot: Bot, app: App, fake: FakeEngine) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("write f")
    bot.gateway.thread_create(thread_id)
    bot.gateway.message(thread_id, "return 2")
    await settle()
    v2 = message_id(bot.final(thread_id))

    calls = await bot.click(v2, "ct:diff:1:2")
    assert "Version 1 → 2 of #1" in calls[-1].content and "+    return 2" in calls[-1].content
    calls = await bot.click(v2, "ct:download:1:2")
    assert calls[-1].files == [("snippet.py", "def f():\n    return 2")]

    versions = await app.store.list_versions(1)
    assert len(versions) == 2  # a diff and a download make no version
