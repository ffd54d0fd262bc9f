"""Button presses and ``/code`` are durable jobs on Discord: written down before the interaction
is acknowledged, acted on once when Discord (or a replaying gateway) delivers them twice, and
taken over in the same messages when the process acting on them died."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bot.adapters.discord.durable import CODE_KIND, PRESS_KIND, RecordedInteraction
from bot.adapters.discord.surface import ResponseSurface
from bot.config import Config, PublicUrl
from bot.present import Notice
from bot.web.auth import read_link, site_key
from engines import EngineUnavailable, FakeEngine
from storage import Job
from tests.fakes.discord_fakes import CHANNEL_ID, http_error, settle, texts

from ...conftest import both_backends, fenced
from .conftest import (
    CALLBACK,
    EDIT,
    EPHEMERAL,
    FOLLOWUP,
    ORIGINAL,
    SEND,
    THREAD,
    Bot,
    Connect,
    message_id,
    take_over,
)

DEFERRED = discord.InteractionResponseType.deferred_channel_message
db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)


@pytest.fixture
def config(db_target: Path | str) -> Config:
    """The Discord bot's config, on SQLite and on a real PostgreSQL (its jobs' payloads,
    claims and notes as replicas sharing one database see them)."""
    return Config(
        db_path=db_target,
        model="fake:echo",
        rate_limit_per_minute=0,
        discord_bot_token="test-token",
        edit_interval=0.05,
    )


FOLLOWUP_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"


def shown(bot: Bot, message: int | str) -> str:
    """What a message says now (its text displays, or its content)."""
    payload = bot.fake.messages[int(message)]
    return "\n".join(texts(payload.get("components") or [])) or str(payload.get("content"))


async def _durable(connected: Connect, fake: FakeEngine, code: str = "print(1 + 2)") -> Bot:
    """A durable bot, its worker started, with a session whose version prints 3."""
    fake.responder = lambda request: fenced(code)
    bot = await connected(durable=True)
    bot.work()
    await bot.code("add one and two")
    return bot


async def _until(check: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def _deferred(bot: Bot, token: str) -> bool:
    """Whether Discord has answered the interaction's acknowledgement."""
    return any(c.key == CALLBACK and c.response is not None for c in bot.for_token(token))


async def _claimed_by_the_dead(bot: Bot, token: str, kind: str) -> Job:
    """The interaction ``token`` written down and acknowledged by this process (acting on
    nothing), then claimed by a replica that dies."""

    async def acknowledged() -> bool:
        return _deferred(bot, token) and await bot.app.store.count_jobs("queued") == 1

    await _until(acknowledged)
    job = await bot.app.store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == kind and job.attempts == 1
    assert job.delivery == f"discord:interaction:{bot.fake.interactions[token]['id']}"
    assert job.payload["interaction"]["token"] == token  # what answers it from anywhere
    assert token not in repr(RecordedInteraction.from_payload(job.payload["interaction"]))
    return job


async def _code_in_process(bot: Bot, prompt: str) -> tuple[str, int]:
    """``/code`` answered in memory (the bot's presses stay durable)."""
    worker, bot.adapter.worker = bot.adapter.worker, None
    try:
        return await bot.code(prompt)
    finally:
        bot.adapter.worker = worker


def _dead_response(bot: Bot, job: Job) -> ResponseSurface:
    """The deferred response as the dead replica answered it, through the token."""
    recorded = RecordedInteraction.from_payload(job.payload["interaction"])
    client = bot.adapter.client
    channel = client.get_partial_messageable(recorded.channel, guild_id=recorded.guild)
    interaction = recorded.revive(client, channel, deferred=DEFERRED)
    return ResponseSurface.taken_over(
        client, 0.05, interaction, private=False, original=None, filled=False
    )


# -- presses ---------------------------------------------------------------------------------


async def test_a_press_delivered_twice_is_acted_on_once(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await _durable(connected, fake)
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    version = message_id(bot.final(thread_id))

    token = bot.gateway.click(version, "ct:download:1:1")
    payload = bot.fake.interactions[token]
    bot.gateway._parse("interaction_create", payload)  # the same INTERACTION_CREATE again
    await bot.jobs_done(2)
    await asyncio.sleep(0.3)  # time for a second answer that must not come

    calls = bot.for_token(token)
    assert [c.key for c in calls] == [CALLBACK, ORIGINAL]  # acknowledged once, answered once
    assert calls[1].files == [("snippet.py", "print(1 + 2)")]

    # after a restart, the gateway replays it to a process that never saw it
    await bot.restart(durable=True)
    bot.work()
    bot.gateway._parse("interaction_create", payload)
    duplicates = bot.app.metrics.events.labels(platform="discord", kind="duplicate")

    async def dropped() -> bool:
        return bool(duplicates._value.get() == 1)

    await _until(dropped)
    await asyncio.sleep(0.2)
    assert len(bot.for_token(token)) == 2  # nothing more
    assert await bot.app.store.count_jobs("done") == 2


async def test_a_press_whose_process_died_is_done_again_in_the_same_message(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await _durable(connected, fake)
    if not bot.app.runs.can_run:
        pytest.skip("no working sandbox here (bubblewrap missing, or namespaces refused)")
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    version = message_id(bot.final(thread_id))
    await bot.stop_working()  # this process writes presses down but acts on none

    token = bot.gateway.click(version, "ct:run:1:1")
    job = await _claimed_by_the_dead(bot, token, PRESS_KIND)
    # the dead replica filled the response with the run's first message, then died
    running = await _dead_response(bot, job).post(Notice(text="Running version 1 …", summary=""))
    notes = {"message": {"channel": running.channel.id, "id": running.id}}
    await bot.app.store.job_progress(job.id, notes)

    await take_over(bot)

    edits = [
        c for c in bot.fake.calls if c.key == EDIT and c.params["message_id"] == str(running.id)
    ]
    assert edits, "the interrupted message was not edited"
    assert "Interrupted by a restart — doing it again below" in shown(bot, running.id)
    calls = bot.for_token(token)
    assert [c.key for c in calls][:2] == [CALLBACK, ORIGINAL]  # the dead replica's
    assert FOLLOWUP in [c.key for c in calls[2:]]  # the run again, below it
    result = [c for c in calls if c.key in (FOLLOWUP, FOLLOWUP_EDIT)][-1]
    assert "Run of version 1 of #1 passed" in shown(bot, message_id(result))
    assert await bot.app.store.count_jobs("failed") == 0


async def test_a_press_received_by_another_process_is_answered_through_its_token(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await _durable(connected, fake)
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    await bot.stop_working()
    token = bot.gateway.click(message_id(bot.final(thread_id)), "ct:download:1:1")

    async def acknowledged() -> bool:
        return _deferred(bot, token) and await bot.app.store.count_jobs("queued") == 1

    await _until(acknowledged)
    # a process that knows nothing of how it was acknowledged performs it
    await bot.restart(durable=True)
    bot.adapter.durable.ack_window = datetime.timedelta(seconds=0.5)
    bot.work()
    await bot.jobs_done(2)

    calls = bot.for_token(token)
    assert [c.key for c in calls] == [CALLBACK, ORIGINAL]  # its deferred response, filled
    assert calls[1].files == [("snippet.py", "print(1 + 2)")]


async def test_a_press_taken_over_past_its_tokens_life_is_answered_in_the_thread(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await _durable(connected, fake)
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    version = message_id(bot.final(thread_id))
    await bot.stop_working()
    late = datetime.timedelta(minutes=14, seconds=30)  # within the token's last minute
    token = bot.gateway.click(version, "ct:download:1:1", age=late)
    await _claimed_by_the_dead(bot, token, PRESS_KIND)  # and died before answering

    await take_over(bot)

    assert [c.key for c in bot.for_token(token)] == [CALLBACK]  # the token is not used
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert sent.files == [("snippet.py", "print(1 + 2)")]
    assert str(sent.json["message_reference"]["message_id"]) == str(version)


async def test_a_press_whose_acknowledgement_failed_is_not_acted_on(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await _durable(connected, fake)
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    bot.fake.fail_next(CALLBACK, http_error(500, "Internal Server Error"))
    token = await bot.press(message_id(bot.final(thread_id)), "ct:download:1:1")

    keys = [c.key for c in bot.for_token(token)]
    assert ORIGINAL not in keys and FOLLOWUP not in keys  # Discord said it failed: nothing more
    assert not [c for c in bot.fake.in_channel(thread_id) if c.files]


async def test_a_retry_press_streams_the_next_version_in_the_thread_through_its_job(
    connected: Connect, fake: FakeEngine
) -> None:
    fake.fail = EngineUnavailable("The model server answered 500.")
    bot = await connected(durable=True)
    bot.work()
    _, thread_id = await bot.code("write x")
    failure = message_id(bot.final(thread_id))

    fake.fail = None
    fake.responder = lambda request: fenced("x = 1")
    token = await bot.press(failure, "ct:retry:1:1")

    [callback] = bot.for_token(token)
    assert callback.json["type"] == 6  # acknowledged without a post: it streams in the thread
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == str(failure)
    assert "x = 1" in bot.final(thread_id).content
    assert [v.request for v in await bot.app.store.list_versions(1)] == ["write x"]


async def test_a_refused_press_is_no_job(connected: Connect, fake: FakeEngine) -> None:
    bot = await connected(durable=True)  # its worker not started: settle() can wait
    await _code_in_process(bot, "a snippet")
    elsewhere = bot.fake.posted(CHANNEL_ID, "ct:download:1:1")  # a copy outside its thread
    [refusal] = await bot.click(elsewhere, "ct:download:1:1")

    assert refusal.key == CALLBACK and refusal.json["data"]["flags"] & EPHEMERAL
    assert "belongs to a snippet in another thread" in refusal.content
    assert await bot.app.store.count_jobs("queued") == 0


# -- /code -----------------------------------------------------------------------------------


async def test_a_refused_code_command_is_no_job(connected: Connect) -> None:
    bot = await connected(durable=True)
    token = bot.gateway.slash("code", prompt="hi", language="klingon")
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["data"]["flags"] & EPHEMERAL and "Unknown language" in answer.content
    assert await bot.app.store.count_jobs("queued") == 0


async def test_a_code_command_delivered_twice_opens_one_session(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await connected(durable=True)
    bot.work()
    token = bot.gateway.slash("code", prompt="say hi")
    bot.gateway._parse("interaction_create", bot.fake.interactions[token])
    await bot.jobs_done(1)
    await asyncio.sleep(0.3)

    assert [c.key for c in bot.for_token(token)][:2] == [CALLBACK, ORIGINAL]
    assert len([c for c in bot.for_token(token) if c.key == CALLBACK]) == 1
    assert len(bot.fake.calls_to(THREAD)) == 1
    [session] = await bot.app.store.list_sessions()
    assert session.version_count == 1


async def test_a_code_command_whose_request_was_posted_opens_its_session_there(
    connected: Connect, fake: FakeEngine
) -> None:
    fake.responder = lambda request: fenced("print('hi')")
    bot = await connected(durable=True)  # its worker not started: it acts on nothing
    token = bot.gateway.slash("code", prompt="say hi")
    job = await _claimed_by_the_dead(bot, token, CODE_KIND)
    # the dead replica posted the request as the response, then died
    parent = await _dead_response(bot, job).post(Notice(text="say hi", summary="say hi"))
    await bot.app.store.job_progress(job.id, {"parent": {"channel": CHANNEL_ID, "id": parent.id}})

    await take_over(bot)

    assert [c.key for c in bot.for_token(token)] == [CALLBACK, ORIGINAL]  # no second request
    [thread] = bot.fake.calls_to(THREAD)
    assert thread.params["message_id"] == str(parent.id)  # the thread hangs from that post
    assert "Version 1 of #1" in bot.final(parent.id).content
    [session] = await bot.app.store.list_sessions()
    assert session.key.thread == str(parent.id) and session.version_count == 1


async def test_a_code_command_cut_short_mid_answer_is_answered_again_in_that_message(
    connected: Connect, fake: FakeEngine
) -> None:
    fake.responder = lambda request: fenced("print('hi')")
    bot = await connected(durable=True)
    token = bot.gateway.slash("code", prompt="say hi")
    job = await _claimed_by_the_dead(bot, token, CODE_KIND)
    # the dead replica posted the request, opened its thread, began the answer, then died
    parent = await _dead_response(bot, job).post(Notice(text="say hi", summary="say hi"))
    thread = await parent.create_thread(name="Python: say hi")
    writing = await bot.adapter.in_channel(thread).post(
        Notice(text="Writing version 1 …", summary="writing")
    )
    notes = {
        "parent": {"channel": CHANNEL_ID, "id": parent.id},
        "message": {"channel": thread.id, "id": writing.id},
    }
    await bot.app.store.job_progress(job.id, notes)

    await take_over(bot)

    assert len(bot.fake.calls_to(THREAD)) == 1  # the same thread
    edits = [c for c in bot.fake.in_channel(thread.id) if c.key == EDIT]
    assert edits[0].params["message_id"] == str(writing.id)
    assert "Interrupted by a restart — answering again below" in shown(bot, writing.id)
    final = bot.final(thread.id)
    assert "Version 1 of #1" in final.content and message_id(final) != writing.id
    [session] = await bot.app.store.list_sessions()
    assert session.key.thread == str(thread.id) and session.version_count == 1
    assert await bot.app.store.count_jobs("failed") == 0


async def test_view_history_tells_the_presser_alone_a_one_time_link(
    connected: Connect, fake: FakeEngine
) -> None:
    fake.responder = lambda request: fenced("print(1 + 2)")
    bot = await connected(durable=True, public_url=PublicUrl("https://bot.example.com"))
    bot.work()
    await bot.code("add one and two")
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    version = message_id(bot.final(thread_id))

    token = await bot.press(version, "ct:history:1:1")

    [answer] = [c for c in bot.for_token(token) if c.key == FOLLOWUP]
    assert answer.json["flags"] & EPHEMERAL  # the link signs in as the presser: theirs alone
    text = str(answer.json)
    [link] = [w.strip("()<>\"',") for w in text.split() if "/login?t=" in w]
    grant = await read_link(
        await site_key(bot.app.store), bot.app.store, parse_qs(urlsplit(link).query)["t"][0]
    )
    assert grant is not None and grant.caller.platform == "discord"
    assert grant.caller.user == str(bot.fake.interactions[token]["member"]["user"]["id"])


# -- direct messages ---------------------------------------------------------------------------


async def test_direct_messages_are_jobs_answered_once_and_taken_over_in_their_message(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await connected(durable=True, discord_allow_dms=True)
    bot.work()
    dm = bot.fake.next_id()
    bot.gateway.message(dm, "before any snippet", guild=False)
    await bot.jobs_done(1)
    assert "Start one with `/code PROMPT`" in bot.fake.in_channel(dm)[-1].content

    fake.responder = lambda r: fenced(f"# {r.messages[-1].content}")
    bot.gateway.slash("code", prompt="in a dm", channel_id=dm, dm=True)
    await bot.jobs_done(2)
    payload = bot.gateway.message(dm, "adjust it", guild=False)
    bot.gateway._parse("message_create", payload)  # the same MESSAGE_CREATE again
    await bot.jobs_done(3)
    await asyncio.sleep(0.2)  # time for a second answer that must not come
    versions = await bot.app.store.list_versions(1)
    assert [v.request for v in versions] == ["in a dm", "adjust it"]

    # a message a dead replica claimed, mid-answer: said in its message, answered below
    await bot.stop_working()
    payload = bot.gateway.message(dm, "once more", guild=False)
    store = bot.app.store

    async def queued() -> bool:
        return await store.count_jobs("queued") == 1

    await _until(queued)
    job = await store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == "discord.dm" and job.lane == f"discord:@me:{dm}"
    channel = bot.adapter.client.get_partial_messageable(dm, type=discord.ChannelType.private)
    writing = await bot.adapter.in_channel(channel).post(
        Notice(text="Writing version 3 …", summary="writing")
    )
    await store.job_progress(job.id, {"message": {"channel": dm, "id": writing.id}})
    await take_over(bot)
    await bot.jobs_done(4)

    assert "Interrupted by a restart" in shown(bot, writing.id)
    versions = await store.list_versions(1)
    assert [v.request for v in versions] == ["in a dm", "adjust it", "once more"]
    assert "# once more" in bot.fake.in_channel(dm)[-1].content
