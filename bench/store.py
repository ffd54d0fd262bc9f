"""Benchmark the store on a file database holding 100,000 sessions. Prints figures; never asserts.

Run from the repository root: ``python -m bench.store`` or ``python bench/store.py``
(``--sessions N``, ``--owners N``, ``--queries N``, ``--turns N``, ``--seed N`` to vary it).
Goal: ``list_sessions(owner=, platform=, workspace=, limit=50)`` p99 <= 5 ms.

The last part runs ``--turns`` simultaneous turns (200 by default), each doing what the session
core asks of the store for one message (find the session, read its versions, its pending
failure and its files, then append a version), all released at once, three rounds: the figures
are each turn's store time and each of its reads' time, so they show reads waiting behind
writes (or behind each other) as the bot sees them under load.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import Session, SessionKey, Store

PLATFORMS = {"slack": ["T01", "T02", "T03"], "discord": ["G01", "G02"]}
LANGUAGES = ["python", "javascript", "rust", "go", "bash"]
CODE = "def solve(items):\n    return sorted(set(items), key=str.lower)\n" * 4
LIST_GOAL_MS = 5.0

T = TypeVar("T")


def fill(path: Path, *, sessions: int, owners: int, rng: random.Random) -> tuple[int, int]:
    """Bulk-insert sessions and versions; return (sessions, versions) written.

    This bypasses the Store API (plain sqlite3, executemany, one transaction) only so that
    setting up 100,000 sessions takes seconds; the timed part below goes through the API.
    Each owner has a home platform and workspace holding most of their sessions.
    """
    homes = []
    for _ in range(owners):
        platform = rng.choice(list(PLATFORMS))
        homes.append((platform, rng.choice(PLATFORMS[platform])))
    now = time.time()
    session_rows = []
    for n in range(sessions):
        owner = rng.randrange(owners)
        if rng.random() < 0.8:
            platform, workspace = homes[owner]
        else:
            platform = rng.choice(list(PLATFORMS))
            workspace = rng.choice(PLATFORMS[platform])
        created = now - rng.uniform(0, 365 * 86400)
        updated = min(now, created + rng.expovariate(1 / 3600))
        session_rows.append(
            (n + 1, platform, workspace, f"C{rng.randrange(50):03d}", f"{n}.{rng.random():.6f}",
             f"U{owner:04d}", rng.choice(LANGUAGES), "gpt-4o-mini", f"snippet {n}",
             created, updated)
        )  # fmt: skip
    version_rows = []
    for session_id, *_, created, updated in session_rows:
        if rng.random() < 0.3:
            for number in range(1, rng.randint(1, 5) + 1):
                version_rows.append(
                    (session_id, number, f"request {number}", CODE, "note", "gpt-4o-mini",
                     100, 200, 900, "ok", min(updated, created + number))
                )  # fmt: skip
    with closing(sqlite3.connect(path)) as conn, conn:  # one transaction
        conn.executemany(
            "INSERT INTO sessions (id, platform, workspace, channel, thread, owner, language,"
            " model, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            session_rows,
        )
        conn.executemany(
            "INSERT INTO versions (session_id, number, request, code, note, model,"
            " prompt_tokens, completion_tokens, latency_ms, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            version_rows,
        )
    return len(session_rows), len(version_rows)


async def timed(call: Callable[[T], Awaitable[object]], args: Iterable[T]) -> list[float]:
    """Await ``call(arg)`` for each arg, one after another; each one's wall time in ms."""
    out = []
    for arg in args:
        start = time.perf_counter()
        await call(arg)
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(label: str, ms: list[float], goal: float | None = None) -> None:
    ordered = sorted(ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    line = f"{label:<48} n={len(ms):<5} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms"
    line += f"  max {ordered[-1]:7.3f} ms"
    if goal is not None:
        line += f"   (goal p99 <= {goal:g} ms: {'met' if p99 <= goal else 'NOT met'})"
    print(line)


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="codethread-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        await (await Store.open(path)).close()  # schema via the real migrations
        start = time.perf_counter()
        sessions, versions = fill(path, sessions=args.sessions, owners=args.owners, rng=rng)
        fill_s = time.perf_counter() - start
        with closing(sqlite3.connect(path)) as conn:
            owner_homes = conn.execute(
                "SELECT owner, platform, workspace, COUNT(*) AS n FROM sessions"
                " GROUP BY owner, platform, workspace ORDER BY owner, n DESC"
            ).fetchall()
            with_versions = [r[0] for r in conn.execute("SELECT DISTINCT session_id FROM versions")]
        homes: dict[str, tuple[str, str]] = {}
        for owner, platform, workspace, _ in owner_homes:
            homes.setdefault(owner, (platform, workspace))  # each owner's busiest place
        size_mb = path.stat().st_size / 1e6
        print(f"filled {sessions:,} sessions, {versions:,} versions, {len(homes):,} owners "
              f"in {fill_s:.2f} s ({size_mb:.1f} MB)")  # fmt: skip

        async with await Store.open(path) as store:
            await store.list_sessions(limit=1)  # warm the connection and page cache
            picks = rng.choices(sorted(homes), k=args.queries)

            async def list_home(owner: str) -> list[Session]:
                platform, workspace = homes[owner]
                return await store.list_sessions(
                    owner=owner, platform=platform, workspace=workspace, limit=50
                )

            async def list_place(place: tuple[str, str]) -> object:
                return await store.list_sessions(platform=place[0], workspace=place[1])

            async def add(session_id: int) -> object:
                return await store.add_version(
                    session_id,
                    request="again",
                    code=CODE,
                    note="",
                    model="gpt-4o-mini",
                    prompt_tokens=100,
                    completion_tokens=200,
                    latency_ms=900,
                )

            report(
                "list_sessions(owner, platform, workspace, 50)",
                await timed(list_home, picks),
                LIST_GOAL_MS,
            )
            rows = await list_home(picks[0])
            print(f"{'':<48} ({len(rows)} rows for {picks[0]}, version_count filled in)")
            report(
                "list_sessions(owner) [sorts the owner's rows]",
                await timed(lambda o: store.list_sessions(owner=o), picks[:200]),
            )
            report(
                "list_sessions(platform, workspace) [no owner]",
                await timed(list_place, [("slack", "T01")] * 50),
            )
            report(
                "list_sessions() [all, newest 50]",
                await timed(lambda _: store.list_sessions(), range(200)),
            )
            ids = rng.choices(with_versions, k=args.queries)
            report("get_version(id) latest", await timed(store.get_version, ids))
            report("add_version(id, ...) [one commit each]", await timed(add, ids))
            picked = rng.sample(with_versions, args.turns)
            await concurrent_turns(store, picked, rounds=3)
            await concurrent_turns(store, picked, rounds=3, durable=True)


async def concurrent_turns(
    store: Store, session_ids: list[int], *, rounds: int, durable: bool = False
) -> None:
    """Release one turn per session at once, ``rounds`` times; report turn and read times.

    ``durable`` adds what a turn kept in the store costs around it: the delivery claimed, a
    rate window counted, the job added, claimed and finished (five more writes).
    """
    sessions = [await store.get_session(session_id) for session_id in session_ids]
    keys = [session.key for session in sessions if session is not None]
    turns: list[float] = []
    reads: list[float] = []
    deliveries = iter(range(10**9))

    async def read(call: Awaitable[T]) -> T:
        start = time.perf_counter()
        result = await call
        reads.append((time.perf_counter() - start) * 1000)
        return result

    async def turn(key: SessionKey) -> None:
        start = time.perf_counter()
        lane = f"{key.platform}:{key.workspace}:{key.channel}:{key.thread}"
        job = None
        if durable:
            delivery = f"Ev{next(deliveries)}"
            assert await store.claim_delivery(delivery)
            await store.rate_hit(f"user:{lane}", window=60, limit=1000)
            await store.add_job(delivery=delivery, lane=lane, kind="turn", payload={"t": "x"})
            job = await store.claim_job("bench", stale_after=60)
        session = await read(store.find_session(key))
        assert session is not None
        await read(store.list_versions(session.id))
        await read(store.latest_failure(session.id))
        await read(store.list_files(session.id))
        await store.add_version(
            session.id, request="again", code=CODE, note="", model="gpt-4o-mini",
            prompt_tokens=100, completion_tokens=200, latency_ms=900,
        )  # fmt: skip
        if job is not None:
            await store.finish_job(job.id)
        turns.append((time.perf_counter() - start) * 1000)

    for _ in range(rounds):
        await asyncio.gather(*(turn(key) for key in keys))
    label = f"{len(keys)} {'durable turns' if durable else 'turns'} at once"
    report(f"{label}: store time of a turn", turns)
    report(f"{label}: one read", reads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
