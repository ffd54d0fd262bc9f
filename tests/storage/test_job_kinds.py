"""Claiming only some kinds of job, on both backends: ``kinds`` filters the job claimed, by
exact prefix, and never the lane rule, so a lane's jobs still run one at a time in id order
whichever claimer takes each (``serve`` its turns, ``codethread worker`` its ``run.`` jobs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage import Job, Store
from tests.storage.conftest import Database, FakeClock

RUNS = ("run.",)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(db: Database, clock: FakeClock) -> AsyncIterator[Store]:
    async with await db.open(clock) as store:
        yield store


@pytest.fixture
async def pair(db: Database, clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    async with await db.open(clock) as one, await db.open(clock) as two:
        yield one, two


async def add_job(store: Store, delivery: str, kind: str, lane: str = "a") -> Job:
    job = await store.add_job(delivery=delivery, lane=lane, kind=kind, payload={})
    assert job is not None
    return job


async def claim(store: Store, owner: str, kinds: tuple[str, ...] | None = RUNS) -> int | None:
    job = await store.claim_job(owner, stale_after=30, kinds=kinds)
    return None if job is None else job.id


async def test_only_jobs_of_the_given_kinds_are_claimed(store: Store) -> None:
    turn = await add_job(store, "Ev1", "turn", lane="a")
    run = await add_job(store, "Ev2", "run.snippet", lane="b")
    test = await add_job(store, "Ev3", "run.test", lane="c")

    assert await claim(store, "worker") == run.id
    assert await claim(store, "worker") == test.id
    assert await claim(store, "worker") is None  # the turn is left for serve
    assert await claim(store, "serve", None) == turn.id


async def test_a_job_waits_behind_its_lanes_earlier_jobs_of_any_kind(store: Store) -> None:
    turn = await add_job(store, "Ev1", "turn")
    run = await add_job(store, "Ev2", "run.snippet")
    later = await add_job(store, "Ev3", "turn")

    assert await claim(store, "worker") is None  # the lane's first job is a turn
    assert await claim(store, "serve", ("turn",)) == turn.id
    assert await claim(store, "worker") is None  # running: the lane is serve's
    await store.finish_job(turn.id)

    assert await claim(store, "worker") == run.id
    assert await claim(store, "serve", ("turn",)) is None  # the lane is the worker's now
    assert await claim(store, "serve", None) is None
    await store.finish_job(run.id)
    assert await claim(store, "serve", ("turn",)) == later.id


async def test_a_stale_job_is_claimed_again_only_by_a_claimer_of_its_kind(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    run = await add_job(one, "Ev1", "run.snippet")
    assert await claim(one, "worker-1") == run.id
    clock.advance(31)  # worker-1 died

    assert await claim(two, "serve", ("turn",)) is None
    assert await claim(two, "worker-2") == run.id


async def test_kinds_are_exact_prefixes(store: Store) -> None:
    await add_job(store, "Ev1", "RUN.snippet", lane="a")
    await add_job(store, "Ev2", "runner", lane="b")
    odd = await add_job(store, "Ev3", "run_%x", lane="c")
    plain = await add_job(store, "Ev4", "run.", lane="d")

    assert await claim(store, "w", ("ru%", "ru_", "run.s")) is None  # no wildcards, no case
    assert await claim(store, "w", ("run_%",)) == odd.id
    assert await claim(store, "w") == plain.id  # a kind equal to the prefix starts with it
    assert await claim(store, "w", ()) is None  # no kinds: nothing
    assert await store.count_jobs("queued") == 2


async def test_several_kinds_in_id_order_one_claimer_each(pair: tuple[Store, Store]) -> None:
    one, _ = pair
    wanted = []
    for n in range(6):
        kind = ("run.snippet", "eval.task", "turn")[n % 3]
        job = await add_job(one, f"Ev{n}", kind, lane=f"lane{n}")
        if kind != "turn":
            wanted.append(job.id)

    claims = await asyncio.gather(
        *(claim(s, f"w{n}", ("run.", "eval.")) for n in range(4) for s in pair)
    )

    assert sorted(c for c in claims if c is not None) == wanted  # each once
    assert await one.count_jobs("queued") == 2
