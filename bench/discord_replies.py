"""Discord adapter under a burst: many thread replies at once, through the real discord.py.

20 sessions are opened with /code (injected at once as INTERACTION_CREATE events); then 200
replies, 10 per session, are injected at once as MESSAGE_CREATE events through the connection
state's parsers, while 20 more /code commands arrive. The bot talks to a recording REST client
and interaction webhook adapter (tests/fakes/discord_fakes.py) that answer after ``--rest``
seconds each, and to a FakeEngine that streams every answer over ``--latency`` seconds.

Figures: the burst's wall time against the engine floor (the replies of one session answered
one after another: ``--replies`` times ``--latency``, 20 s at the defaults; goal within 10 %),
replies lost (goal 0), replies answered out of order within a session (goal 0),
acknowledgement time of /code from event to the deferral call (Discord allows 3 s), the
edits per streamed message per second (goal: about 1, the configured ``edit_interval``), and
messages Discord would have refused (the fake checks Components V2 rules; goal 0).
The adapter is the one ``bot.app.build`` makes; the end waits for it with ``drain()``.

    python -m bench.discord_replies [--sessions 20] [--replies 10] [--latency 2.0] [--rest 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from discord.webhook.async_ import async_context

from bench.stats import pct
from bot.adapters.discord import DiscordAdapter
from bot.app import build
from bot.config import Config
from engines import FakeEngine, GenerationRequest
from tests.fakes.discord_fakes import Call, FakeDiscord

CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"
SEND = "POST /channels/{channel_id}/messages"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"


def answer(request: GenerationRequest) -> str:
    """About 1,500 characters of code that names the request it answers."""
    asked = request.messages[-1].content
    body = "\n".join(f"    total += {i}  # step {i} of the plan" for i in range(40))
    return f"```python\n# {asked}\ndef solve():\n    total = 0\n{body}\n    return total\n```\n"


def acks(fake: FakeDiscord, injected: dict[str, float]) -> list[float]:
    first: dict[str, float] = {}
    for call in fake.calls_to(CALLBACK):
        first.setdefault(call.params["webhook_token"], call.at)
    return [first[token] - at for token, at in injected.items()]


def edit_rates(fake: FakeDiscord) -> tuple[list[float], int, int]:
    """Progress edits per second of each streamed message, from the edit that starts the
    answer (a message may first show its place in line for a while); the most edits of one
    message in any one second; how many messages streamed."""
    posts: dict[str, Call] = {}
    edits: dict[str, list[Call]] = {}
    for call in fake.calls:
        if call.key == SEND and call.response is not None:
            posts[str(call.response["id"])] = call
        elif call.key == EDIT and call.params["message_id"] in posts:
            edits.setdefault(call.params["message_id"], []).append(call)
    rates, busiest = [], 0
    for message_id, calls in edits.items():
        shown = [posts[message_id], *calls]
        start = next((i for i, c in enumerate(shown) if "Writing" in c.content), 0)
        progress = shown[start + 1 : -1]  # the last edit is the result, sent when it is ready
        if not progress:
            continue
        times = [c.at for c in shown[start:-1]]
        rates.append(len(progress) / (shown[-1].at - shown[start].at))
        busiest = max(busiest, max(sum(1 for t in times if s <= t < s + 1) for s in times))
    return rates, busiest, len(rates)


async def _settle(limit: float) -> None:
    """Until every task but the durable-job worker's own loops (which run for good) is done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        others = {
            t for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and not t.done()
            and not t.get_name().startswith(("codethread-jobs-claim", "codethread-jobs-heartbeat"))
        }  # fmt: skip
        if not others:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"tasks still running: {others}")
        await asyncio.wait(others, timeout=deadline - loop.time())


async def run(sessions: int, replies: int, latency: float, rest: float) -> None:
    engine = FakeEngine(answer, delay=latency, chunk_size=30)
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            db_path=Path(tmp) / "bench.db",
            model="fake:echo",
            rate_limit_per_minute=0,
            discord_bot_token="bench-token",
            edit_interval=1.0,
        )
        fake = FakeDiscord(latency=rest)
        app = await build(config, engine_factory=lambda spec: engine, discord_http=fake.http)
        await app.start()
        [adapter] = app.adapters
        assert isinstance(adapter, DiscordAdapter)
        await adapter.client.login("bench-token")
        # the durable path, as serve runs it (/code and replies are jobs): its tasks answer
        # interactions through the fake's webhooks, which the context they start in names
        async_context.set(fake.webhooks)
        adapter.work()
        gateway = fake.gateway(adapter.client)
        gateway.guild_create()
        loop = asyncio.get_running_loop()

        # 1. open the sessions: /code from everyone at once
        opened: dict[str, float] = {}
        for i in range(sessions):
            opened[gateway.slash("code", prompt=f"session {i}")] = loop.time()
        await adapter.drain()
        await _settle(limit=60)
        threads = [int(c.params["message_id"]) for c in fake.calls_to(THREAD)]
        for thread_id in threads:
            gateway.thread_create(thread_id)
        ack_idle = acks(fake, opened)

        # 2. the burst: every reply at once, and more /code commands in the middle of it
        before = len(fake.calls)
        began = time.perf_counter()
        busy: dict[str, float] = {}
        for r in range(replies):
            for s, thread_id in enumerate(threads):
                gateway.message(thread_id, f"s{s} r{r}")
            if r == replies // 2:
                for i in range(sessions):
                    busy[gateway.slash("code", prompt=f"late {i}")] = loop.time()
        await adapter.drain()
        await _settle(limit=600)
        wall = time.perf_counter() - began
        ack_busy = acks(fake, busy)

        got: dict[str, list[str]] = {}
        for session in await app.store.list_sessions(limit=10 * sessions):
            for version in await app.store.list_versions(session.id):
                if version.request.startswith("s"):
                    got.setdefault(version.request.split()[0], []).append(version.request)
        answered = lost = disorder = 0
        for s in range(sessions):
            mine, expected = got.get(f"s{s}", []), [f"s{s} r{r}" for r in range(replies)]
            answered += len(mine)
            lost += len(set(expected) - set(mine))
            disorder += sum(1 for a, b in zip(mine, expected, strict=False) if a != b)
        rates, busiest, streamed = edit_rates(fake)
        rest_calls = [c for c in fake.calls[before:] if c.via == "rest"]
        await app.aclose()

    total = sessions * replies
    floor = replies * latency
    print(
        f"\nsessions={sessions} replies/session={replies} engine latency={latency:.1f} s "
        f"REST latency={rest * 1000:.0f} ms"
    )
    print(f"replies: {total} injected at once, {answered} answered in {wall:.1f} s wall")
    print(
        f"engine floor: {floor:.1f} s; the burst took {(wall / floor - 1) * 100:+.1f} % more"
        "   (goal within 10 %)"
    )
    print(f"replies lost: {lost}   (goal 0)")
    print(f"replies out of order within their session: {disorder}   (goal 0)")
    print(
        f"/code acknowledgement, {sessions} at once on an idle bot: "
        f"p50 {statistics.median(ack_idle) * 1000:.1f} ms  p99 {pct(ack_idle, 99) * 1000:.1f} ms"
    )
    print(
        f"/code acknowledgement, {len(ack_busy)} during the burst: "
        f"p50 {statistics.median(ack_busy) * 1000:.1f} ms  p99 {pct(ack_busy, 99) * 1000:.1f} ms"
        "   (Discord's window: 3000 ms)"
    )
    print(
        f"edits per streamed message per second: mean {statistics.mean(rates):.2f}  "
        f"p99 {pct(rates, 99):.2f}  max {max(rates):.2f}  over {streamed} messages; "
        f"most edits of one message within one second: {busiest}   (goal about 1)"
    )
    print(f"REST calls during the burst: {len(rest_calls)} ({len(rest_calls) / wall:.0f}/s)")
    print(f"messages Discord would have refused: {len(fake.refused)}   (goal 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--replies", type=int, default=10)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--rest", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.replies, args.latency, args.rest))


if __name__ == "__main__":
    main()
