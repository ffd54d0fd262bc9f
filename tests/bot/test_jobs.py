"""The durable-job worker: it performs many threads' jobs at once, each thread's in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs import Journal, Worker
from storage import Job, Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.db")
    yield opened
    await opened.close()


async def test_many_threads_are_performed_at_once_and_each_in_order(store: Store) -> None:
    """Forty threads with two jobs each: all forty threads' jobs run together (a turn mostly
    waits for its model, so a small cap would keep threads waiting while the model idles),
    each thread's taken in order (a thread's later jobs are claimed by the process running
    its first, whose line in the core keeps them in order: bot.session_queue)."""
    release = asyncio.Event()
    running: set[str] = set()
    seen: list[tuple[str, str]] = []
    most = 0

    async def perform(job: Job, journal: Journal) -> None:
        nonlocal most
        running.add(job.lane)
        most = max(most, len(running))
        seen.append((job.lane, job.payload["n"]))
        await release.wait()
        running.discard(job.lane)

    worker = Worker(store, heartbeat_every=0.05)
    worker.handle("test.", perform)
    for n in ("first", "second"):
        for lane in range(40):
            await worker.accept(
                delivery=f"{lane}:{n}", lane=f"lane{lane}", kind="test.job", payload={"n": n}
            )
    worker.start()
    try:
        for _ in range(200):
            if most == 40:
                break
            await asyncio.sleep(0.02)
        assert most == 40
        release.set()
        await asyncio.wait_for(worker.idle(), 10)
    finally:
        await worker.stop()
    assert await store.count_jobs("done") == 80
    for lane in range(40):
        assert [n for name, n in seen if name == f"lane{lane}"] == ["first", "second"]
