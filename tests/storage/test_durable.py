"""Rows replicas share, on both backends: deliveries claimed once, sliding rate windows, and
jobs claimed in per-lane order, by one claimer at a time, again when their owner died.

Two stores opened on one database stand for two processes (two SQLite connections sets on
one file, two asyncpg pools on one server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage import Job, Store
from storage.rows import PRUNE_EVERY
from tests.storage.conftest import Database, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pair(db: Database, clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    async with await db.open(clock) as one, await db.open(clock) as two:
        yield one, two


async def add_job(
    store: Store, delivery: str, lane: str = "slack:T1:C1:1", **payload: object
) -> Job:
    job = await store.add_job(delivery=delivery, lane=lane, kind="turn", payload=payload)
    assert job is not None
    return job


# -- deliveries ------------------------------------------------------------------------------


async def test_a_delivery_is_claimed_once_by_any_process(pair: tuple[Store, Store]) -> None:
    one, two = pair

    claims = await asyncio.gather(
        *(s.claim_delivery("Ev1", ttl=60) for _ in range(5) for s in pair)
    )

    assert claims.count(True) == 1
    assert await two.claim_delivery("Ev2") is True
    assert await one.claim_delivery("Ev2") is False
    assert await one.claim_delivery("ev2") is True  # keys are exact


async def test_an_expired_delivery_may_be_claimed_again(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    assert await one.claim_delivery("Ev1", ttl=60) is True
    clock.advance(59)
    assert await two.claim_delivery("Ev1", ttl=60) is False
    clock.advance(1)

    assert await two.claim_delivery("Ev1", ttl=60) is True  # a new claim, a new expiry
    clock.advance(59)
    assert await one.claim_delivery("Ev1", ttl=60) is False


async def test_expired_deliveries_are_removed_lazily(db: Database, clock: FakeClock) -> None:
    async with await db.open(clock) as timed:
        for n in range(PRUNE_EVERY - 1):
            assert await timed.claim_delivery(f"old{n}", ttl=10) is True
        clock.advance(11)
        assert await db.rows("SELECT COUNT(*) FROM deliveries") == [(PRUNE_EVERY - 1,)]

        assert await timed.claim_delivery("new", ttl=10) is True  # the PRUNE_EVERY-th call

        assert await db.rows("SELECT key FROM deliveries") == [("new",)]


# -- rate windows ----------------------------------------------------------------------------


async def test_a_sliding_window_refuses_until_the_oldest_hit_leaves(
    db: Database, clock: FakeClock
) -> None:
    async with await db.open(clock) as store:

        async def hit(key: str = "u1", count: bool = True) -> float | None:
            return await store.rate_hit(key, window=60, limit=3, count=count)

        for _ in range(3):  # hits at +0, +10, +20
            assert await hit() is None
            clock.advance(10)
        assert await hit() == pytest.approx(30)  # at +30: the +0 hit leaves at +60
        assert await hit(count=False) == pytest.approx(30)
        assert await hit("u2") is None  # another key, another window
        clock.advance(29.5)
        assert await hit() == pytest.approx(0.5)  # refused hits were not counted...
        clock.advance(0.5)

        assert await hit(count=False) is None  # ...so at +60 one is free: a peek takes none
        assert await hit() is None  # this one counts: +10, +20, +60
        assert await hit() == pytest.approx(10)  # the +10 hit leaves at +70


async def test_a_window_counts_exactly_its_limit_across_processes(
    pair: tuple[Store, Store],
) -> None:
    results = await asyncio.gather(
        *(s.rate_hit("u1", window=60, limit=5) for _ in range(10) for s in pair)
    )

    assert results.count(None) == 5
    assert all(wait == pytest.approx(60) for wait in results if wait is not None)


async def test_old_hits_are_removed(db: Database, clock: FakeClock) -> None:
    async with await db.open(clock) as store:
        for n in range(PRUNE_EVERY - 1):
            await store.rate_hit(f"u{n}", window=10, limit=1)
        clock.advance(10)

        assert await store.rate_hit("u0", window=10, limit=1) is None  # pruned, then counted

        assert await db.rows("SELECT key FROM rate_hits") == [("u0",)]


@pytest.mark.parametrize(("window", "limit"), [(0, 1), (-1, 1), (60, 0)])
async def test_a_window_that_admits_nothing_is_refused(
    store: Store, window: float, limit: int
) -> None:
    with pytest.raises(ValueError):
        await store.rate_hit("u1", window=window, limit=limit)


# -- jobs ------------------------------------------------------------------------------------


async def test_a_job_is_added_once_per_delivery(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    payload = {"text": "make it faster 😀", "files": ["a.csv"], "nested": {"n": 1.5}}

    job = await one.add_job(delivery="Ev1", lane="slack:T1:C1:1", kind="turn", payload=payload)

    assert job == Job(
        id=job.id if job else 0, delivery="Ev1", lane="slack:T1:C1:1", kind="turn",
        payload=payload, state="queued", owner=None, attempts=0, progress=None,
        created_at=clock.now,
    )  # fmt: skip
    assert await two.add_job(delivery="Ev1", lane="other", kind="turn", payload={}) is None
    assert await one.count_jobs("queued") == 1


async def test_a_payload_must_be_a_json_object(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.add_job(delivery="Ev1", lane="l", kind="turn", payload=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.add_job(delivery="Ev1", lane="l", kind="turn", payload={"x": object()})
    assert await store.count_jobs("queued") == 0


async def test_jobs_of_a_lane_run_one_at_a_time_in_order(store: Store) -> None:
    first = await add_job(store, "Ev1", lane="a")
    second = await add_job(store, "Ev2", lane="a")
    other = await add_job(store, "Ev3", lane="b")

    claimed = await store.claim_job("w1", stale_after=30)
    assert claimed is not None and claimed.id == first.id
    assert (claimed.state, claimed.owner, claimed.attempts) == ("running", "w1", 1)
    claimed_other = await store.claim_job("w2", stale_after=30)
    assert claimed_other is not None and claimed_other.id == other.id  # lane b is free
    assert await store.claim_job("w2", stale_after=30) is None  # lane a is w1's while it runs

    await store.finish_job(first.id)

    after = await store.claim_job("w2", stale_after=30)
    assert after is not None and after.id == second.id
    assert await store.count_jobs("done") == 1
    assert await store.count_jobs("running") == 2


async def test_the_owner_of_a_running_lane_takes_its_next_jobs_in_order(store: Store) -> None:
    first = await add_job(store, "Ev1", lane="a")
    second = await add_job(store, "Ev2", lane="a")
    third = await add_job(store, "Ev3", lane="a")
    assert (await store.claim_job("w1", stale_after=30)).id == first.id  # type: ignore[union-attr]
    assert await store.claim_job("w2", stale_after=30) is None
    # w1 may go on (its own line keeps them in order and tells their place), oldest first
    assert (await store.claim_job("w1", stale_after=30)).id == second.id  # type: ignore[union-attr]
    assert (await store.claim_job("w1", stale_after=30)).id == third.id  # type: ignore[union-attr]
    assert await store.claim_job("w1", stale_after=30) is None


async def test_a_failed_job_frees_its_lane_too(store: Store) -> None:
    first = await add_job(store, "Ev1")
    second = await add_job(store, "Ev2")
    assert (await store.claim_job("w1", stale_after=30)) is not None

    await store.finish_job(first.id, state="failed")

    claimed = await store.claim_job("w1", stale_after=30)
    assert claimed is not None and claimed.id == second.id
    assert await store.count_jobs("failed") == 1
    with pytest.raises(ValueError):
        await store.finish_job(second.id, state="queued")  # type: ignore[arg-type]


async def test_concurrent_claimers_never_get_the_same_job(pair: tuple[Store, Store]) -> None:
    one, _ = pair
    heads = [await add_job(one, f"Ev{lane}-1", lane=f"lane{lane}") for lane in range(8)]
    for lane in range(8):
        await add_job(one, f"Ev{lane}-2", lane=f"lane{lane}")

    claims = await asyncio.gather(
        *(s.claim_job(f"w{n}-{i}", stale_after=30) for n in range(10) for i, s in enumerate(pair))
    )

    claimed = [job for job in claims if job is not None]
    assert sorted(job.id for job in claimed) == [job.id for job in heads]  # once each
    assert await one.count_jobs("running") == 8
    assert await one.count_jobs("queued") == 8


async def test_a_job_whose_owner_died_is_claimed_again(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    job = await add_job(one, "Ev1", text="hello")
    assert await one.claim_job("w1", stale_after=30) is not None
    await one.job_progress(job.id, {"message": "1700.2", "shown": 3})
    clock.advance(30)
    assert await two.claim_job("w2", stale_after=30) is None  # 30 s old: not yet stale

    clock.advance(1)
    again = await two.claim_job("w2", stale_after=30)

    assert again is not None and again.id == job.id
    assert (again.owner, again.attempts, again.state) == ("w2", 2, "running")
    assert again.payload == {"text": "hello"}
    assert again.progress == {"message": "1700.2", "shown": 3}  # where the first one got to
    assert await one.claim_job("w1", stale_after=30) is None  # and now it is w2's


async def test_a_heartbeat_keeps_a_job_from_being_claimed_again(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    mine = [await add_job(one, "Ev1", lane="a"), await add_job(one, "Ev2", lane="b")]
    theirs = await add_job(one, "Ev3", lane="c")
    for owner in ("w1", "w1", "w3"):
        assert await one.claim_job(owner, stale_after=30) is not None

    for _ in range(3):
        clock.advance(20)
        await one.heartbeat("w1")
        claimed = await two.claim_job("w2", stale_after=30)
        if claimed is not None:  # w3 never beats: its job goes stale after 30 s, mine never
            assert claimed.id == theirs.id
    assert await two.count_jobs("running") == 3

    clock.advance(31)  # w1 stopped beating too
    stolen = await two.claim_job("w2", stale_after=30)
    assert stolen is not None and stolen.id == mine[0].id  # the oldest first
    assert stolen.attempts == 2


async def test_a_stale_job_blocks_its_lane_until_claimed_again(
    db: Database, clock: FakeClock
) -> None:
    async with await db.open(clock) as store:
        first = await add_job(store, "Ev1")
        await add_job(store, "Ev2")
        assert await store.claim_job("w1", stale_after=30) is not None
        clock.advance(31)

        again = await store.claim_job("w2", stale_after=30)

        assert again is not None and again.id == first.id  # the lane's first, not the next
        assert await store.claim_job("w3", stale_after=30) is None  # the lane is w2's now


async def test_jobs_survive_a_restart(db: Database, clock: FakeClock) -> None:
    async with await db.open(clock) as store:
        job = await add_job(store, "Ev1", text="kept")
        assert await store.claim_job("w1", stale_after=30) is not None

    clock.advance(60)  # the process died; a new one starts
    async with await db.open(clock) as store:
        resumed = await store.claim_job("w2", stale_after=30)
        assert resumed is not None and resumed.id == job.id and resumed.attempts == 2
        assert resumed.payload == {"text": "kept"}


async def test_finished_jobs_are_pruned_after_a_day(db: Database, clock: FakeClock) -> None:
    async with await db.open(clock) as store:
        old = await add_job(store, "Ev1", lane="a")
        await add_job(store, "Ev2", lane="b")
        for _ in range(2):
            await store.claim_job("w1", stale_after=30)
        await store.finish_job(old.id)
        clock.advance(86401)
        unfinished = await add_job(store, "Ev3", lane="c")

        assert await store.prune_jobs() == 1

        assert await store.count_jobs("done") == 0
        ids = sorted(int(str(row[0])) for row in await db.rows("SELECT id FROM jobs"))
        assert ids == [old.id + 1, unfinished.id]
        assert await store.prune_jobs(older_than=0) == 0  # running and queued ones stay


async def test_a_process_whose_job_was_taken_over_finishes_nothing(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    """A replica thought dead (its heartbeat stale) that comes back and ends the job another
    one now runs must not mark it done under that one."""
    slow, taker = pair
    job = await add_job(slow, "Ev1")
    assert (await slow.claim_job("slow", stale_after=30)) is not None
    clock.advance(31)
    taken = await taker.claim_job("taker", stale_after=30)
    assert taken is not None and taken.id == job.id and taken.attempts == 2

    assert not await slow.finish_job(job.id, owner="slow")
    assert await taker.count_jobs("running") == 1
    assert await taker.finish_job(job.id, owner="taker")
    assert await taker.count_jobs("done") == 1
