"""Durable turns under crashes: two replicas on one PostgreSQL, one SIGKILLed every few seconds.

A throwaway PostgreSQL (tests/postgres.py), the loopback OpenAI-compatible server (each answer
streamed over ``--answer-seconds``) and the loopback Slack Web API run in this process; two
``codethread serve`` replicas run as real subprocesses in Slack's HTTP mode on that one
database, with ``job_stale_after = --stale-after`` in their TOML config. ``--sessions``
sessions are created in the database, one thread each, each in a channel of its own (so that
Slack's one new message a second per channel does not pace the figures). Then ``--messages``
thread replies are sent over ``--seconds``, each to a session and to a replica chosen at
random; a POST that fails (the replica is down, or dies while answering) is sent to the other
replica as Slack's retry, and about ``--duplicate-share`` of the messages are also delivered to
the other replica (same event id, same message ts). Meanwhile a killer SIGKILLs one replica
(when both are up) every ``--kill-every`` seconds, give or take a fifth, and starts it again at
once.

When no job is queued or running any more, each message is counted from what the fake Slack
shows (the thread's messages showing a finished version, ``Version N of #S``) and from the
database (the versions whose request is the message's text):

- answered once: exactly one version, and exactly one message showing it;
- lost: no version, or no message showing it;
- duplicated: more than one version, or more than one message showing it.

Latency runs from a message's first POST to the moment the fake Slack first showed its version
finished (no longer streaming). A turn is "resumed" when its job was claimed more than once
(``jobs.attempts > 1``: its replica died under it); "normal" turns include those that waited in
their thread behind a resumed one. Messages left saying "Writing version" (an attempt that died
before it recorded its message, so nobody could end it) are counted too.

The default ``--stale-after`` is 6 s. A worker refreshes its jobs' heartbeat every 5 s, or a
third of ``job_stale_after`` when that is shorter (``bot.jobs.Worker``), so a short stale time
no longer lets a replica take over turns a live one is still answering (``--stale-after 3
--kill-every 0``: no duplicates; before that rule it made 29 of 300).

    python -m bench.crash [--messages 300] [--sessions 50] [--seconds 60] [--kill-every 5]
                          [--stale-after 6] [--answer-seconds 1] [--logs DIR] [--seed 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from aiohttp import web

from bench.replicas import Deliveries, Delivery, Replica
from bench.stats import pct
from storage import SessionKey, open_store
from tests.bot.adapters.slack.test_durable import environment
from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply
from tests.fakes.slack_api import TEAM, FakeSlack
from tests.postgres import find_bin, postgres_server

MODEL = "openai:test-model"
FINISHED = re.compile(r"Version (\d+) of #(\d+) ·")
_SHOWING = ("chat.postMessage", "chat.update", "chat.stopStream", "chat.startStream")
_OPEN_JOBS = "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')"


class WatchedSlack(FakeSlack):
    """The fake Slack, noting when each message first shows a finished version."""

    def __init__(self) -> None:
        super().__init__()
        #: (channel, ts) of a message -> (first seen, session id, version number)
        self.finished: dict[tuple[str, str], tuple[float, int, int]] = {}

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        if request.match_info["method"] in _SHOWING and isinstance(response.body, bytes):
            answer = json.loads(response.body)
            message = self.messages.get((answer.get("channel", ""), answer.get("ts", "")))
            if message is not None and not message.streaming:
                found = FINISHED.search(message.body())
                shown = (int(found[2]), int(found[1])) if found else None
                key = (message.channel, message.ts)
                if shown and self.finished.get(key, (0.0, 0, 0))[1:] != shown:
                    self.finished[key] = (time.monotonic(), *shown)
        return response


@dataclass(frozen=True, slots=True)
class Thread:
    session: int
    owner: str
    channel: str
    ts: str


@dataclass(slots=True)
class Sent:
    """One thread reply of the stream, and how its deliveries went."""

    index: int
    thread: Thread
    ts: str
    text: str
    delivery: Delivery = field(default_factory=Delivery)
    duplicated_to: str = ""  # the second delivery's outcome, when there was one

    @property
    def event(self) -> dict[str, Any]:
        return {
            "type": "message", "channel": self.thread.channel, "user": self.thread.owner,
            "text": self.text, "ts": self.ts, "thread_ts": self.thread.ts,
            "channel_type": "channel",
        }  # fmt: skip


@dataclass(slots=True)
class Killer:
    """SIGKILLs one replica every ``every`` seconds (±20 %) and starts it again at once;
    never both at once (a replica still starting is left alone). ``every`` 0: no kills."""

    replicas: list[Replica]
    every: float
    rng: random.Random
    kills: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, until: float) -> None:
        restarts: set[asyncio.Task[None]] = set()
        while self.every:
            await asyncio.sleep(self.every * self.rng.uniform(0.8, 1.2))
            if time.monotonic() >= until:
                break
            if not all(r.up for r in self.replicas):
                continue
            victim = self.rng.choice(self.replicas)
            self.kills.append((time.monotonic(), victim.name))
            await victim.kill()
            task = asyncio.create_task(self._restart(victim))
            restarts.add(task)
            task.add_done_callback(restarts.discard)
        await asyncio.gather(*restarts)

    async def _restart(self, replica: Replica) -> None:
        try:
            await replica.start()
        except RuntimeError as err:
            self.failures.append(str(err))


@dataclass(slots=True)
class Run:
    """What a run leaves to count: the messages, the fake Slack, the database's rows."""

    sent: list[Sent]
    slack: WatchedSlack
    jobs: dict[str, asyncpg.Record]
    versions: list[asyncpg.Record]
    killer: Killer
    replicas: list[Replica]
    streamed: float  # seconds the stream lasted
    wall: float  # seconds from the first message to the end
    settled: bool  # no job was left open


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answering(seconds: float) -> Callable[[dict[str, Any]], ScriptedReply]:
    """The fake model: :func:`code_reply`, streamed over about ``seconds``."""

    def handler(body: dict[str, Any]) -> ScriptedReply:
        reply = code_reply(body)
        reply.delay_between = seconds / max(1, len(reply.pieces()) - 1)
        return reply

    return handler


async def _make_threads(dsn: str, count: int) -> list[Thread]:
    """``count`` sessions, one thread each, each in a channel of its own."""
    store = await open_store(dsn)  # migrates the database too, before any replica starts
    made = []
    try:
        for n in range(count):
            owner, channel, ts = f"U{n:03d}", f"C{n:03d}", f"1800000000.{n:06d}"
            session = await store.create_session(
                key=SessionKey(platform="slack", workspace=TEAM, channel=channel, thread=ts),
                owner=owner, language="python", model=MODEL, title=f"crash bench {n}",
            )  # fmt: skip
            made.append(Thread(session.id, owner, channel, ts))
    finally:
        await store.close()
    return made


async def _stream(
    args: argparse.Namespace,
    rng: random.Random,
    threads: list[Thread],
    deliveries: Deliveries,
    replicas: list[Replica],
) -> list[Sent]:
    """Send the messages, evenly spaced over ``--seconds``; return when each was accepted."""
    sent: list[Sent] = []
    tasks: list[asyncio.Task[Any]] = []
    began = time.monotonic()

    async def send(item: Sent, first: Replica, duplicate: bool) -> None:
        event_id = f"EvCrash{item.index}"
        item.delivery.sent_at = time.monotonic()
        accepted = deliveries.deliver(item.delivery, first, item.event, event_id)
        if duplicate:
            again = deliveries.duplicate(first, item.event, event_id, rng)
            _, item.duplicated_to = await asyncio.gather(accepted, again)
        else:
            await accepted

    for n in range(args.messages):
        await asyncio.sleep(max(0.0, began + n * args.seconds / args.messages - time.monotonic()))
        thread = rng.choice(threads)
        text = f"change number {n} in session {thread.session}"
        item = Sent(index=n, thread=thread, ts=f"1800001000.{n:06d}", text=text)
        sent.append(item)
        duplicate = rng.random() < args.duplicate_share
        tasks.append(asyncio.create_task(send(item, rng.choice(replicas), duplicate)))
    await asyncio.gather(*tasks)
    return sent


async def _settle(db: asyncpg.Connection, replicas: list[Replica], stale_after: float) -> bool:
    """Until both replicas are up and no job is queued or running, twice in a row; False when
    the open jobs stopped going down for a while (a stuck lane), or after ten minutes."""
    patience = 30 + 2 * stale_after
    deadline, stalled = time.monotonic() + 600, time.monotonic() + patience
    quiet, fewest = 0, None
    while quiet < 2:
        if time.monotonic() > min(deadline, stalled):
            return False
        await asyncio.sleep(0.5)
        busy = int(await db.fetchval(_OPEN_JOBS)) if all(r.up for r in replicas) else -1
        quiet = quiet + 1 if busy == 0 else 0
        if busy >= 0 and (fewest is None or busy < fewest):
            fewest, stalled = busy, time.monotonic() + patience
    return True


async def _bench(args: argparse.Namespace, rng: random.Random, tmp: Path, dsn: str) -> Run:
    threads = await _make_threads(dsn, args.sessions)
    (tmp / "config.toml").write_text(
        f"job_stale_after = {args.stale_after}\nedit_interval = 0.5\nrate_limit_per_minute = 0\n"
    )
    slack = WatchedSlack()
    async with (
        OpenAIServer(_answering(args.answer_seconds)) as model,
        slack,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
    ):
        env = environment(tmp, dsn, model, slack)
        logs = args.logs or tmp
        replicas = [Replica(f"r{n}", _free_port(), env, logs / f"r{n}.log") for n in (1, 2)]
        await asyncio.gather(*(r.start() for r in replicas))
        killer = Killer(replicas, args.kill_every, rng)
        began = time.monotonic()
        killing = asyncio.create_task(killer.run(began + args.seconds))
        sent = await _stream(args, rng, threads, Deliveries(http, replicas), replicas)
        await killing
        streamed = time.monotonic() - began
        db = await asyncpg.connect(dsn)
        try:
            settled = await _settle(db, replicas, args.stale_after)
            await asyncio.sleep(1.0)  # time for anything that should not come
            wall = time.monotonic() - began
            jobs = {row["delivery"]: row for row in await db.fetch("SELECT * FROM jobs")}
            versions = await db.fetch("SELECT session_id, number, request FROM versions")
        finally:
            await db.close()
        await asyncio.gather(*(r.stop() for r in replicas))
    return Run(sent, slack, jobs, versions, killer, replicas, streamed, wall, settled)


def _count(run: Run) -> tuple[Counter[str], dict[str, list[float]], list[str]]:
    """Each message's outcome (once, lost, duplicated, pending), the latencies of normal and
    resumed turns, and a few lines on each message that was lost or duplicated."""
    by_request: dict[tuple[int, str], list[int]] = defaultdict(list)
    for row in run.versions:
        by_request[(row["session_id"], row["request"])].append(row["number"])
    shown: dict[tuple[int, int], list[float]] = defaultdict(list)
    for at, session, number in run.slack.finished.values():
        shown[(session, number)].append(at)
    outcomes: Counter[str] = Counter()
    latency: dict[str, list[float]] = {"normal": [], "resumed": []}
    odd: list[str] = []
    for item in run.sent:
        session = item.thread.session
        numbers = sorted(by_request.get((session, item.text), []))
        showing = [at for n in numbers for at in shown.get((session, n), [])]
        job = run.jobs.get(f"slack:ts:{item.thread.channel}:{item.ts}")
        attempts = job["attempts"] if job is not None else 0
        if job is not None and job["state"] in ("queued", "running"):
            kind = "pending"  # not settled: neither lost nor answered yet
        elif not numbers or not showing:
            kind = "lost"
        elif len(numbers) > 1 or len(showing) > 1:
            kind = "duplicated"
        else:
            kind = "once"
        outcomes[kind] += 1
        if showing:
            latency["resumed" if attempts > 1 else "normal"].append(
                min(showing) - item.delivery.sent_at
            )
        if kind in ("lost", "duplicated"):
            state = f"job {job['state']}, attempts {attempts}" if job is not None else "no job"
            odd.append(
                f"  #{item.index} session {session} ({item.thread.channel}, ts {item.ts}): "
                f"{kind}; versions {numbers}, shown {len(showing)}, {state}, "
                f"posts {item.delivery.posts}"
            )
            for m in run.slack.thread(item.thread.channel, item.thread.ts):
                line = (m.body().strip().splitlines() or [""])[0][:90]
                odd.append(f"      {m.ts}{' (streaming)' if m.streaming else ''}: {line}")
    return outcomes, latency, odd


def _report(args: argparse.Namespace, run: Run) -> None:
    outcomes, latency, odd = _count(run)
    bodies = [m.body() for m in run.slack.messages.values() if m.user == run.slack.bot_user]
    writing = sum("Writing version" in body for body in bodies)
    interrupted = sum("Interrupted by a restart" in body for body in bodies)
    duplicates = sum(1 for item in run.sent if item.duplicated_to)
    retried = sum(1 for item in run.sent if len(item.delivery.posts) > 1)
    refused = sum(1 for item in run.sent if not item.delivery.accepted)
    starts = [s for r in run.replicas for s in r.starts[1:]]

    print(
        f"\n{len(run.sent)} messages over {run.streamed:.0f} s into {args.sessions} sessions, "
        f"two replicas on one PostgreSQL; job_stale_after {args.stale_after:g} s, answers "
        f"streamed over {args.answer_seconds:g} s; wall {run.wall:.0f} s"
        + ("" if run.settled else "  (NOT settled: jobs still open at the end)")
    )
    print(
        f"kills (SIGKILL) {len(run.killer.kills)}, restart to /livez p50 "
        f"{statistics.median(starts) if starts else 0:.1f} s; duplicate deliveries "
        f"{duplicates}; retried after a failed POST {retried}; never accepted {refused}"
    )
    print(
        f"answered once {outcomes['once']}   lost {outcomes['lost']}   duplicated "
        f"{outcomes['duplicated']}   (goal: lost 0, duplicated 0)"
        + (f"   still pending {outcomes['pending']}" if outcomes["pending"] else "")
    )
    print(f"messages left 'Writing version…' {writing}; 'Interrupted by a restart' {interrupted}")
    print("latency, first POST -> final answer shown:")
    print(f"  {'turns':<9}{'n':>5}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for name, values in latency.items():
        figures = (
            f"{pct(values, 50):>9.2f}{pct(values, 99):>9.2f}{max(values):>9.2f}"
            if values
            else f"{'-':>9}{'-':>9}{'-':>9}"
        )
        print(f"  {name:<9}{len(values):>5}{figures}")
    if latency["normal"] and latency["resumed"]:
        extra = [pct(latency["resumed"], q) - pct(latency["normal"], q) for q in (50, 99)]
        print(f"  extra latency of a resumed turn: p50 {extra[0]:+.2f} s, p99 {extra[1]:+.2f} s")
    for line in odd[:60]:
        print(line)
    for failure in run.killer.failures:
        print(f"restart failed: {failure}")


async def _main(args: argparse.Namespace) -> None:
    bin_dir = find_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries (Debian's postgresql package) found")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="codethread-crash-") as tmp,
        postgres_server(bin_dir) as dsn,
    ):
        run = await _bench(args, random.Random(args.seed), Path(tmp), dsn)
    _report(args, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the stream lasts")
    parser.add_argument(
        "--kill-every", type=float, default=5.0, help="seconds between kills (0: no kills)"
    )
    parser.add_argument("--stale-after", type=float, default=6.0, help="job_stale_after, s")
    parser.add_argument("--answer-seconds", type=float, default=1.0)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--logs", type=Path, help="keep the replicas' logs in this directory")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if args.messages < 1 or args.sessions < 1 or args.seconds <= 0 or args.kill_every < 0:
        parser.error("--messages and --sessions take 1 or more, --seconds > 0, --kill-every >= 0")
    if args.stale_after <= 0 or args.answer_seconds < 0 or not 0 <= args.duplicate_share <= 1:
        parser.error("--stale-after > 0, --answer-seconds >= 0, --duplicate-share 0 to 1")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
