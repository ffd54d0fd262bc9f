"""API tokens and shared secrets, on both backends: tokens kept by hash, refused once revoked
or expired by the store's clock, their use recorded at most once a minute; a secret made
once and then the same for every process.

Two stores opened on one database stand for two processes (or replicas).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiosqlite
import pytest

from storage import ApiToken, ConstraintViolation, Store, migrate
from storage.migrations import MIGRATIONS
from tests.storage.conftest import Database, FakeClock


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


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- tokens ----------------------------------------------------------------------------------


async def test_a_token_is_found_by_its_hash_and_keeps_no_secret(
    pair: tuple[Store, Store], clock: FakeClock, db: Database
) -> None:
    one, two = pair

    token = await one.add_token("alice", digest("t1"), label="ci", expires_at=clock.now + 600)

    assert token == ApiToken(
        id=token.id, user="alice", label="ci", created_at=clock.now,
        expires_at=clock.now + 600, revoked_at=None, last_used_at=None,
    )  # fmt: skip
    assert "hash" not in {field.name for field in dataclasses.fields(ApiToken)}
    found = await two.token_by_hash(digest("t1"))  # another process sees it
    assert found == dataclasses.replace(token, last_used_at=clock.now)
    assert await two.token_by_hash(digest("t2")) is None
    assert await db.rows("SELECT hash FROM api_tokens") == [(digest("t1"),)]


async def test_a_hash_is_unique_and_must_look_like_one(store: Store, db: Database) -> None:
    await store.add_token("alice", digest("t1"))

    with pytest.raises(ConstraintViolation):
        await store.add_token("bob", digest("t1"))
    with pytest.raises(ConstraintViolation):  # a token stored unhashed by mistake
        await store.add_token("bob", "ct_" + "x" * 43)

    assert await db.rows("SELECT owner FROM api_tokens") == [("alice",)]


async def test_an_expired_token_is_refused_by_the_stores_clock(
    store: Store, clock: FakeClock
) -> None:
    await store.add_token("alice", digest("t1"), expires_at=clock.now + 60)
    forever = await store.add_token("alice", digest("t2"))

    clock.advance(59)
    assert await store.token_by_hash(digest("t1")) is not None
    clock.advance(1)  # expires_at itself is past
    assert await store.token_by_hash(digest("t1")) is None
    clock.advance(10 * 365 * 86400)
    assert (await store.token_by_hash(digest("t2"))) == dataclasses.replace(
        forever, last_used_at=clock.now
    )


async def test_a_revoked_token_is_refused_and_still_listed(
    pair: tuple[Store, Store], clock: FakeClock
) -> None:
    one, two = pair
    token = await one.add_token("alice", digest("t1"))
    assert await two.token_by_hash(digest("t1")) is not None
    when = clock.now + 5
    clock.advance(5)

    assert await one.revoke_token(token.id) is True

    assert await two.token_by_hash(digest("t1")) is None
    clock.advance(5)
    assert await one.revoke_token(token.id) is True  # revoked already: keeps its time
    assert await one.revoke_token(token.id + 100) is False
    [listed] = await two.list_tokens()
    assert (listed.id, listed.revoked_at) == (token.id, when)


async def test_use_is_recorded_at_most_once_a_minute(
    pair: tuple[Store, Store], clock: FakeClock, db: Database
) -> None:
    one, two = pair
    await one.add_token("alice", digest("t1"))
    first = clock.now
    assert (await one.token_by_hash(digest("t1"))).last_used_at == first  # type: ignore[union-attr]

    clock.advance(59)
    seen = await asyncio.gather(*(s.token_by_hash(digest("t1")) for s in pair for _ in range(3)))

    assert [token.last_used_at for token in seen if token] == [first] * 6
    assert await db.rows("SELECT last_used_at FROM api_tokens") == [(first,)]
    clock.advance(1)
    seen = await asyncio.gather(*(s.token_by_hash(digest("t1")) for s in pair for _ in range(3)))
    # one of them recorded it; the others, racing it, saw the time before
    assert {token.last_used_at for token in seen if token} <= {first, clock.now}
    assert await db.rows("SELECT last_used_at FROM api_tokens") == [(clock.now,)]
    assert (await two.list_tokens())[0].last_used_at == clock.now


async def test_tokens_are_listed_newest_first_by_user(store: Store, clock: FakeClock) -> None:
    old = await store.add_token("alice", digest("t1"), label="laptop")
    clock.advance(1)
    bobs = await store.add_token("bob", digest("t2"), expires_at=clock.now + 1)
    clock.advance(1)
    new = await store.add_token("alice", digest("t3"))
    await store.revoke_token(old.id)
    clock.advance(5)  # bob's has expired: listed all the same

    assert [t.id for t in await store.list_tokens()] == [new.id, bobs.id, old.id]
    assert [t.id for t in await store.list_tokens("alice")] == [new.id, old.id]
    assert await store.list_tokens("bob") == [bobs]
    assert await store.list_tokens("carol") == []
    assert (await store.list_tokens("alice"))[1].label == "laptop"


async def test_tokens_survive_a_restart(db: Database, clock: FakeClock) -> None:
    async with await db.open(clock) as store:
        token = await store.add_token("alice", digest("t1"))

    async with await db.open(clock) as store:
        assert await store.list_tokens() == [token]
        assert (await store.token_by_hash(digest("t1"))).id == token.id  # type: ignore[union-attr]


# -- secrets ---------------------------------------------------------------------------------


async def test_a_secret_is_made_once_and_kept(db: Database, clock: FakeClock) -> None:
    made: list[bytes] = []

    def make(value: bytes) -> bytes:
        made.append(value)
        return value

    async with await db.open(clock) as store:
        assert await store.secret("links", lambda: make(b"\x00key-one\xff")) == b"\x00key-one\xff"
        assert await store.secret("links", lambda: make(b"key-two")) == b"\x00key-one\xff"
        assert await store.secret("other", lambda: make(b"key-three")) == b"key-three"

    async with await db.open(clock) as store:  # a restart (or another replica) gets the same
        assert await store.secret("links", lambda: make(b"key-four")) == b"\x00key-one\xff"
    assert made == [b"\x00key-one\xff", b"key-three"]


async def test_replicas_starting_together_share_one_secret(pair: tuple[Store, Store]) -> None:
    def maker(n: int) -> Callable[[], bytes]:
        return lambda: f"key-{n}".encode()

    values = await asyncio.gather(
        *(store.secret("links", maker(n)) for n, store in enumerate(pair * 5))
    )

    assert len(set(values)) == 1
    assert values[0].startswith(b"key-")


# -- the migration -----------------------------------------------------------------------------


async def test_m009_adds_the_tables_to_a_v8_database(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "v8.db") as conn:
        assert await migrate(conn, migrations=MIGRATIONS[:8]) == 8
        await conn.execute(
            "INSERT INTO jobs (delivery, lane, kind, payload, created_at)"
            " VALUES ('d1', 'a', 'turn', '{}', 1.0)"
        )
        await conn.commit()

        assert await migrate(conn) == len(MIGRATIONS) == 9

        info = await conn.execute_fetchall("PRAGMA table_info(api_tokens)")
        assert [row[1] for row in info] == [
            "id", "owner", "label", "hash", "created_at", "expires_at", "revoked_at",
            "last_used_at",
        ]  # fmt: skip
        info = await conn.execute_fetchall("PRAGMA table_info(secrets)")
        assert [(row[1], row[2]) for row in info] == [("name", "TEXT"), ("value", "BLOB")]
        indexes = await conn.execute_fetchall("PRAGMA index_list(api_tokens)")
        assert {row[1] for row in indexes} >= {"api_tokens_owner"}
        jobs = await conn.execute_fetchall("SELECT delivery FROM jobs")
        assert [tuple(row) for row in jobs] == [("d1",)]
