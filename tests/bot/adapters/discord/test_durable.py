"""Durable turns on Discord: a person's message in a session thread is a job row (unique by
the message's id), performed by the app's worker; a job whose process died mid-answer is
taken over, its message says so, and the answer comes once."""

from __future__ import annotations

import asyncio

from bot.adapters.discord.adapter import JOB_KIND
from bot.present import Notice
from engines import FakeEngine
from tests.fakes.discord_fakes import GUILD_ID

from .conftest import EDIT, SEND, Bot, Connect, message_id, take_over


async def _session(connected: Connect) -> tuple[Bot, int]:
    """A durable bot, its worker started, with a session whose thread it knows."""
    bot = await connected(durable=True)
    bot.work()
    _, thread_id = await bot.code("write f")
    bot.gateway.thread_create(thread_id)
    return bot, thread_id


async def test_a_reply_in_a_session_thread_is_answered_through_a_job(
    connected: Connect, fake: FakeEngine
) -> None:
    bot, thread_id = await _session(connected)
    reply = bot.gateway.message(thread_id, "return 2 instead")
    await bot.jobs_done(2)

    assert await bot.app.store.count_jobs("done") == 2
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == reply["id"]  # answers it
    assert "Version 2 of #1" in bot.final(thread_id).content
    assert fake.requests[-1].messages[-1].content == "return 2 instead"
    versions = await bot.app.store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "return 2 instead"]


async def test_a_message_dispatched_twice_is_answered_once(
    connected: Connect, fake: FakeEngine
) -> None:
    bot, thread_id = await _session(connected)
    asked = len(fake.requests)
    payload = bot.gateway.message(thread_id, "once please")
    bot.gateway._parse("message_create", payload)  # the same MESSAGE_CREATE again
    await bot.jobs_done(2)
    await asyncio.sleep(0.3)  # time for a second answer that must not come

    assert await bot.app.store.count_jobs("done") == 2  # /code's and the message's
    assert len(fake.requests) == asked + 1
    versions = await bot.app.store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "once please"]
    answers = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND]
    assert len([c for c in answers if "Writing version 2" in c.content]) == 1


async def test_a_job_whose_process_died_is_taken_over_in_the_same_message(
    connected: Connect, fake: FakeEngine
) -> None:
    bot, thread_id = await _session(connected)
    store = bot.app.store
    await bot.stop_working()
    # the message is accepted (the worker is not performing any more) ...
    bot.gateway.message(thread_id, "make it count")
    for _ in range(100):
        if await store.count_jobs("queued"):
            break
        await asyncio.sleep(0.01)
    assert await store.count_jobs("queued") == 1
    # ... and claimed by a process that posted its answer's first message, then died
    thread = bot.adapter.client.get_channel(thread_id)
    writing = await bot.adapter.in_channel(thread).post(  # type: ignore[arg-type]
        Notice(text="Writing version 2 …", summary="writing")
    )
    job = await store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == JOB_KIND and job.attempts == 1
    assert job.lane == f"discord:{GUILD_ID}:{thread_id}"
    await store.job_progress(job.id, {"message": {"channel": thread_id, "id": writing.id}})

    await take_over(bot)  # its heartbeat goes stale: a new worker takes it over

    edits = [
        c
        for c in bot.fake.in_channel(thread_id)
        if c.key == EDIT and c.params["message_id"] == str(writing.id)
    ]
    assert edits and "Interrupted by a restart" in edits[-1].content  # said in that message
    assert "Version 2 of #1" in bot.final(thread_id).content
    assert message_id(bot.final(thread_id)) != writing.id  # the answer is a message of its own
    versions = await store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "make it count"]  # exactly once
    assert await store.count_jobs("running") == 0 and await store.count_jobs("failed") == 0


async def test_a_jobs_files_are_downloaded_from_their_urls_and_in_order(
    connected: Connect, fake: FakeEngine
) -> None:
    bot, thread_id = await _session(connected)
    data = "item,amount\npen,3\n"
    bot.gateway.message(thread_id, "use this file", files=[("data.csv", "text/csv", data)])
    bot.gateway.message(thread_id, "now sum it")  # while the file downloads: after it
    await bot.jobs_done(3)

    [stored] = await bot.app.store.list_files(1)
    assert stored.name == "data.csv"
    requests = [r.messages[-1].content for r in fake.requests[-2:]]
    assert requests[0].startswith("use this file") and "pen,3" in requests[0]
    assert requests[1].startswith("now sum it")
    versions = await bot.app.store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "use this file", "now sum it"]


async def test_a_job_in_a_thread_missing_from_the_cache_looks_it_up(connected: Connect) -> None:
    bot = await connected(durable=True)
    bot.work()
    _, thread_id = await bot.code("write f")  # no THREAD_CREATE: the thread is not cached
    bot.gateway.message(thread_id, "return 2 instead")
    await bot.jobs_done(2)
    assert "Version 2 of #1" in bot.final(thread_id).content
