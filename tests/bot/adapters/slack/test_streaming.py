"""Answers streamed natively (chat.startStream/appendStream/stopStream), the fallback to edits,
and Slack's rate limits kept: against a fake Web API that enforces them."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path

import pytest

from engines import FakeEngine
from tests.bot.adapters.slack.harness import Bot, config, fences_balanced, reply, running
from tests.bot.conftest import fenced
from tests.fakes.slack_api import SLACK_RATE_LIMITS, TEAM, FakeSlack


async def test_a_version_streams_natively_and_its_buttons_come_with_the_stop(
    bot: Bot, engine: FakeEngine
) -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(40))
    answer = fenced(code, note="Streaming.")
    engine.responder = lambda r: answer
    engine.chunk_size, engine.delay = 8, 0.6
    parent = await bot.start_session()

    [start] = bot.slack.calls_to("chat.startStream")
    assert start.params["thread_ts"] == parent.ts and start.params["channel"] == "C1"
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == ("U1", TEAM)
    appends = bot.slack.calls_to("chat.appendStream")
    assert 3 <= len(appends) < len(answer) / engine.chunk_size  # paced, not one per chunk
    gaps = [b.at - a.at for a, b in itertools.pairwise(appends)]
    assert min(gaps) >= 0.05 * 0.8  # edit_interval=0.05 in these tests
    [stop] = bot.slack.calls_to("chat.stopStream")
    streamed = "".join(c.params["markdown_text"] for c in [*appends, stop])
    assert streamed == answer and fences_balanced(streamed)
    [buttons] = stop.params["blocks"]
    assert buttons["type"] == "actions" and buttons["elements"][-1]["value"] == "delete:1"

    [version] = bot.slack.thread("C1", parent.ts)  # one message, no post in the thread
    assert version.ts == stop.params["ts"] and not version.streaming
    assert [c.params.get("thread_ts") for c in bot.slack.calls_to("chat.postMessage")] == [None]
    [card] = bot.slack.calls_to("chat.update")  # the card replaces the streamed answer
    assert card.params["ts"] == version.ts
    assert "Version 1 of #1" in version.body() and f"```python\n{code}\n```" in version.body()
    assert version.action_ids()[-1] == "codethread_delete"


async def test_an_open_fence_is_closed_when_the_stream_stops(bot: Bot, engine: FakeEngine) -> None:
    engine.responder = lambda r: "Here:\n\n```python\nprint('cut off'"  # no closing fence
    parent = await bot.start_session()
    [stop] = bot.slack.calls_to("chat.stopStream")
    assert stop.params["markdown_text"].endswith("\n```")
    [version] = bot.slack.thread("C1", parent.ts)
    assert fences_balanced(version.body()) and "cut off" in version.body()


@pytest.mark.parametrize(
    ("error", "remembered"), [("missing_scope", True), ("msg_too_long", False)]
)
async def test_a_refused_stream_falls_back_to_edits(
    bot: Bot, engine: FakeEngine, error: str, remembered: bool
) -> None:
    bot.slack.fail("chat.startStream", error)
    parent = await bot.start_session()
    [version] = bot.slack.thread("C1", parent.ts)
    assert "Version 1 of #1" in version.body() and "print('hi')" in version.body()
    [writing] = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert "Writing version 1" in writing.params["text"]  # the edited message, as before

    await bot.event(reply(parent, "again"))
    await bot.settle()
    assert len(bot.slack.calls_to("chat.startStream")) == (1 if remembered else 2)
    assert len(bot.slack.thread("C1", parent.ts)) == 2


async def test_a_stream_that_slack_ended_is_updated_with_the_result(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.slack.stream_lifetime = 0.2  # Slack ends a stream after about 5 minutes
    engine.chunk_size, engine.delay = 4, 0.5
    parent = await bot.start_session()
    [version] = bot.slack.thread("C1", parent.ts)
    [card] = bot.slack.calls_to("chat.update")  # the appends, then the stop, were refused
    assert card.params["ts"] == version.ts and not version.streaming
    assert "Version 1 of #1" in version.body() and version.action_ids()[-1] == "codethread_delete"


@pytest.mark.parametrize("streaming", [True, False])
async def test_the_result_does_not_wait_out_the_edit_interval(
    tmp_path: Path, slack: FakeSlack, engine: FakeEngine, streaming: bool
) -> None:
    engine.responder = lambda r: fenced("\n".join(f"x{i} = {i}" for i in range(20)))
    engine.chunk_size, engine.delay = 20, 0.3
    settings = dataclasses.replace(config(tmp_path, slack), edit_interval=1.0)
    if not streaming:
        slack.fail("chat.startStream", "unknown_method")
    async with running(settings, slack, engine) as bot:
        parent = await bot.start_session()
    first = slack.calls_to("chat.startStream" if streaming else "chat.postMessage")[-1]
    final = slack.calls_to("chat.stopStream" if streaming else "chat.update")[-1]
    assert final.at - first.at < 0.8  # the answer's 0.3 s, not 0.3 s and the 1 s interval
    assert "x19 = 19" in slack.thread("C1", parent.ts)[0].body()


@pytest.mark.parametrize("streaming", [True, False])
async def test_twenty_answers_at_once_in_one_workspace_get_no_429(
    tmp_path: Path, streaming: bool
) -> None:
    engine = FakeEngine(lambda r: fenced("\n".join(f"v{i} = {i}" for i in range(30))))
    engine.chunk_size, engine.delay = 12, 0.5
    async with FakeSlack(limits=SLACK_RATE_LIMITS) as slack:
        if not streaming:
            slack.fail("chat.startStream", "unknown_method")
        async with running(config(tmp_path, slack), slack, engine) as bot:
            channels = [f"C{i}" for i in range(20)]
            await asyncio.gather(
                *(bot.command("/code", "python count", user=f"U{i}", channel=c) for i, c in
                  enumerate(channels))
            )  # fmt: skip
            await bot.settle()
        assert slack.limited == [] and slack.invalid == []
        for channel in channels:
            [parent] = slack.top_level(channel)
            [version] = slack.thread(channel, parent.ts)
            assert "Version 1 of #" in version.body() and "v29 = 29" in version.body()


async def test_a_waiting_message_gives_way_to_the_stream(bot: Bot, engine: FakeEngine) -> None:
    parent = await bot.start_session()
    engine.delay = 0.3
    await bot.event(reply(parent, "first"))
    await bot.event(reply(parent, "second"))  # waits for the first: a status message
    await bot.settle()
    waiting = [c for c in bot.slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert len(waiting) == 1 and "Waiting for 1 earlier request" in waiting[0].params["text"]
    [deleted] = bot.slack.calls_to("chat.delete")  # then the streamed answer took its place
    assert len(bot.slack.calls_to("chat.startStream")) == 3
    versions = bot.slack.thread("C1", parent.ts)
    assert [v.body().count("Version ") for v in versions] == [1, 1, 1]
    assert deleted.params["ts"] not in {v.ts for v in versions}


async def test_a_429_from_slack_is_counted_in_the_metrics(bot: Bot, engine: FakeEngine) -> None:
    bot.slack.rate_limit("chat.startStream", retry_after=0)
    parent = await bot.start_session()
    assert "Version 1 of #1" in bot.slack.thread("C1", parent.ts)[0].body()
    assert bot.slack.limited and bot.slack.limited[0].method == "chat.startStream"
    assert bot.app.metrics.throttled.labels(platform="slack")._value.get() == 1
