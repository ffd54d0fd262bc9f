"""History at scale: a diff of two 2,000-line versions, and search over 100,000 sessions.

The database is built with plain ``sqlite3`` bulk inserts into a schema the real migrations
made (the triggers fill the search index as for any version); the figures are then taken
through the real :class:`storage.Store` and :func:`bot.diffs.unified_diff`. Goal: p99 ≤ 20 ms
for both.

    python -m bench.history [--sessions 100000] [--runs 50]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from bot.diffs import unified_diff
from storage import Store, Version

WORDS = [
    "parse", "csv", "sum", "column", "plot", "chart", "sort",
    "merge", "fetch", "json", "retry", "cache", "tree", "graph",
]  # fmt: skip


def _version(number: int, code: str) -> Version:
    return Version(
        id=number, session_id=1, number=number, request="r", code=code, note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=0, status="ok", created_at=0.0,
    )  # fmt: skip


def _fill(path: Path, sessions: int) -> None:
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,"
            " title, created_at, updated_at) VALUES ('slack', 'T', 'C', ?, ?, 'python', 'm', ?,"
            " ?, ?)",
            (
                (f"{i}.1", f"u{i % 500}", " ".join(rng.sample(WORDS, 3)), i, i)
                for i in range(sessions)
            ),
        )
        conn.executemany(
            "INSERT INTO versions (session_id, number, request, code, note, model, latency_ms,"
            " status, created_at) VALUES (?, 1, ?, ?, ?, 'm', 1, 'ok', ?)",
            (
                (
                    i + 1,
                    " ".join(rng.sample(WORDS, 4)),
                    f"def task_{i}():\n    return {rng.randint(0, 10**6)}\n",
                    "A note.",
                    i,
                )
                for i in range(sessions)
            ),
        )
    conn.close()


async def run(sessions: int, runs: int) -> None:
    old = "\n".join(f"line_{i} = {i}" for i in range(2000))
    new = "\n".join(f"line_{i} = {i * (1 if i % 50 else 2)}" for i in range(2000))
    a, b = _version(1, old), _version(2, new)
    diffs = []
    for _ in range(runs):
        began = time.perf_counter()
        unified_diff(1, a, b)
        diffs.append((time.perf_counter() - began) * 1000)
    print(f"diff of two 2,000-line versions: p50 {statistics.median(diffs):.2f} ms  "
          f"p99 {pct(diffs, 99):.2f} ms   (goal p99 <= 20 ms)")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        await (await Store.open(path)).close()  # a blank database, migrated
        began = time.perf_counter()
        _fill(path, sessions)
        took = time.perf_counter() - began
        print(f"built {sessions:,} sessions with a version each in {took:.1f} s")
        async with await Store.open(path) as store:
            for text in ("chart sort", "task_4242", "return 77"):
                times = []
                for _ in range(runs):
                    began = time.perf_counter()
                    found = await store.list_sessions(owner="u42", search=text, limit=25)
                    times.append((time.perf_counter() - began) * 1000)
                print(f"search {text!r} (one owner of 500, {len(found)} found): "
                      f"p50 {statistics.median(times):.2f} ms  p99 {pct(times, 99):.2f} ms  "
                      "(goal p99 <= 20 ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.runs))


if __name__ == "__main__":
    main()
