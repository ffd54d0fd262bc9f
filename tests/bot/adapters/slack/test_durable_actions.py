"""Button presses and ``/code`` are durable jobs: written down before Slack hears "ok", acted
on once even when Slack (or a replaying proxy) delivers them twice, and taken over in the same
messages when the process acting on them died."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from bot.jobs import Worker
from engines import FakeEngine
from storage import Job
from tests.bot.adapters.slack.harness import Bot, direct
from tests.bot.conftest import fenced
from tests.fakes.slack_api import TEAM


def _press(version_ts: str, thread_ts: str, value: str, trigger: str) -> dict[str, object]:
    return {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": "U2"},
        "api_app_id": "A1",
        "channel": {"id": "C1"},
        "container": {"type": "message", "message_ts": version_ts},
        "message": {"ts": version_ts, "thread_ts": thread_ts},
        "trigger_id": trigger,
        "actions": [
            {"action_id": "codethread_run", "block_id": "b", "type": "button", "value": value}
        ],
    }


async def test_a_press_delivered_twice_runs_once(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    engine.responder = lambda request: fenced("print(1 + 2)")
    parent = await bot.start_session("add one and two")
    [version] = bot.slack.thread("C1", parent.ts)

    press = _press(version.ts, parent.ts, "run:1:1", "trigger-twice")
    for _ in range(2):  # the same interaction, its trigger id and all, delivered again
        status, _ = await bot.interact(press)
        assert status == 200
    await bot.settle()

    _, result = bot.slack.thread("C1", parent.ts)  # one result, not two
    assert result.text == "Run of version 1 of #1 passed"
    jobs = bot.app.store
    assert await jobs.count_jobs("done") >= 1 and await jobs.count_jobs("failed") == 0


async def test_a_press_whose_process_died_is_done_again_in_the_same_message(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    engine.responder = lambda request: fenced("print(1 + 2)")
    parent = await bot.start_session("add one and two")
    [version] = bot.slack.thread("C1", parent.ts)
    store = bot.app.store
    worker = bot.app.worker
    assert worker is not None
    await worker.stop(drain=0)  # this process writes presses down but acts on none

    status, _ = await bot.interact(_press(version.ts, parent.ts, "run:1:1", "trigger-dies"))
    assert status == 200
    # a replica claimed it, posted the run's first message, then died
    job = await store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == "slack.press"
    posted = await bot.adapter.client.chat_postMessage(
        channel="C1", thread_ts=parent.ts, text="Running version 1 …"
    )
    await store.job_progress(job.id, {"message": {"channel": "C1", "ts": posted["ts"]}})

    # its heartbeat goes stale: this one takes over (and keeps its own fresh)
    await _take_over(bot)

    _, interrupted, result = bot.slack.thread("C1", parent.ts)
    assert interrupted.ts == posted["ts"]
    assert "Interrupted by a restart — doing it again below" in interrupted.body()
    assert result.text == "Run of version 1 of #1 passed"
    assert await store.count_jobs("failed") == 0


async def _take_over(bot: Bot) -> None:
    """A worker of this process takes over the dead replica's job, once its heartbeat is
    stale, and finishes it (its own heartbeat kept fresh)."""
    store = bot.app.store
    taker = Worker(store, stale_after=0.5, heartbeat_every=0.05)
    bot.adapter.worker = taker
    await bot.adapter.start()
    try:
        for _ in range(300):
            if await store.count_jobs("done") > 0 and not await store.count_jobs("running"):
                break
            await asyncio.sleep(0.05)
        await bot.settle()
    finally:
        await taker.stop(drain=5)


async def _claimed_by_the_dead(bot: Bot, text: str) -> Job:
    """``/code text`` written down by this process (acting on nothing) and claimed by a
    replica that then dies."""
    worker = bot.app.worker
    assert worker is not None
    await worker.stop(drain=0)
    status, _, _ = await bot.command("/code", text)
    assert status == 200
    job = await bot.app.store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == "slack.code"
    return job


async def test_a_code_command_delivered_twice_opens_one_session(bot: Bot) -> None:
    form = urlencode({
        "team_id": TEAM, "channel_id": "C1", "user_id": "U1", "command": "/code",
        "text": "say hi", "api_app_id": "A1", "trigger_id": "trigger-resent",
        "response_url": bot.slack.response_url("resent"),
    })  # fmt: skip
    for _ in range(2):  # a replaying proxy sends the same request again
        status, _, _ = await bot.post(form, "application/x-www-form-urlencoded")
        assert status == 200
    await bot.settle()
    assert len(bot.slack.top_level("C1")) == 1
    assert len(await bot.app.store.list_sessions()) == 1


async def test_a_code_command_whose_parent_was_posted_opens_its_session_there(
    bot: Bot, engine: FakeEngine
) -> None:
    engine.responder = lambda request: fenced("print('hi')")
    job = await _claimed_by_the_dead(bot, "python say hi")
    parent = await bot.adapter.client.chat_postMessage(channel="C1", text="say hi")
    await bot.app.store.job_progress(job.id, {"parent": {"channel": "C1", "ts": parent["ts"]}})

    await _take_over(bot)

    assert [m.ts for m in bot.slack.top_level("C1")] == [parent["ts"]]  # no second parent
    [answer] = bot.slack.thread("C1", parent["ts"])
    assert answer.text == "Version 1 of snippet #1"
    [session] = await bot.app.store.list_sessions()
    assert session.key.thread == parent["ts"] and session.version_count == 1


async def test_a_code_command_cut_short_mid_answer_is_answered_again_in_that_message(
    bot: Bot, engine: FakeEngine
) -> None:
    engine.responder = lambda request: fenced("print('hi')")
    job = await _claimed_by_the_dead(bot, "python say hi")
    client = bot.adapter.client
    parent = await client.chat_postMessage(channel="C1", text="say hi")
    writing = await client.chat_postMessage(
        channel="C1", thread_ts=parent["ts"], text="Writing version 1 …"
    )
    notes = {
        "parent": {"channel": "C1", "ts": parent["ts"]},
        "message": {"channel": "C1", "ts": writing["ts"]},
    }
    await bot.app.store.job_progress(job.id, notes)

    await _take_over(bot)

    interrupted, answer = bot.slack.thread("C1", parent["ts"])
    assert interrupted.ts == writing["ts"]
    assert "Interrupted by a restart — answering again below" in interrupted.body()
    assert answer.text == "Version 1 of snippet #1"
    [session] = await bot.app.store.list_sessions()
    assert session.version_count == 1 and await bot.app.store.count_jobs("failed") == 0


async def test_a_message_to_the_app_cut_short_is_answered_again_in_that_message(
    bot: Bot, engine: FakeEngine
) -> None:
    """The assistant pane (and direct messages): a message is a job in its thread's lane;
    the message a dead replica was writing says so, and the session is opened after all."""
    engine.responder = lambda request: fenced("print('hi')")
    worker = bot.app.worker
    assert worker is not None
    await worker.stop(drain=0)
    message = direct("python say hi", thread="1800000000.000001")
    assert await bot.event(message) == 200
    assert await bot.event(message) == 200  # delivered again: still one job
    job = await bot.app.store.claim_job("dead-replica", stale_after=30)
    assert job is not None and job.kind == "slack.dm"
    assert job.lane == f"slack:{TEAM}:D1:1800000000.000001"
    writing = await bot.adapter.client.chat_postMessage(
        channel="D1", thread_ts="1800000000.000001", text="Writing version 1 …"
    )
    await bot.app.store.job_progress(job.id, {"message": {"channel": "D1", "ts": writing["ts"]}})

    await _take_over(bot)

    interrupted, answer = bot.slack.thread("D1", "1800000000.000001")
    assert interrupted.ts == writing["ts"]
    assert "Interrupted by a restart — answering again below" in interrupted.body()
    assert "Version 1 of #1" in answer.body()
    [session] = await bot.app.store.list_sessions()
    assert session.version_count == 1 and await bot.app.store.count_jobs("failed") == 0
