"""SQLite's store in particular: the file it makes, WAL, opening races, the query plan of
the owner's listing, deleted content zeroed on disk, and reads that never wait for a write."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from storage import (
    ConstraintViolation,
    SessionGone,
    SessionKey,
    SqliteStore,
    Store,
)
from storage.migrations import MIGRATIONS
from storage.sqlite import _CLAIMABLE, _list_query
from tests.storage.conftest import Ticks


def key(thread: str = "t1", *, platform: str = "slack", workspace: str = "T1") -> SessionKey:
    return SessionKey(platform=platform, workspace=workspace, channel="C1", thread=thread)


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(db_path, clock=Ticks()) as store:
        yield store


async def new_session(store: Store, thread: str = "t1", owner: str = "alice", **where: str) -> int:
    session = await store.create_session(
        key=key(thread, **where), owner=owner, language="python", model="fake", title=thread
    )
    return session.id


async def add(store: Store, session_id: int, code: str = "print(1)") -> int:
    version = await store.add_version(
        session_id,
        request="make it",
        code=code,
        note="",
        model="fake",
        prompt_tokens=10,
        completion_tokens=20,
        latency_ms=5,
    )
    return version.number


def is_file(path: Path) -> bool:
    return path.is_file()


def raw(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read the file with a plain sqlite3 connection, behind the store's back."""
    with closing(sqlite3.connect(db_path)) as conn:
        return [tuple(row) for row in conn.execute(sql, params)]


# -- opening ---------------------------------------------------------------------------------


async def test_open_creates_parent_dirs_and_uses_wal(store: Store, db_path: Path) -> None:
    assert is_file(db_path)
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_directory_and_file_are_private(store: Store, db_path: Path) -> None:
    assert mode(db_path.parent) == 0o700
    for made in sorted(db_path.parent.iterdir()):  # the database and its -wal and -shm files
        assert mode(made) == 0o600, made


def test_an_existing_folder_and_file_keep_their_modes(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    db_path = tmp_path / "shared.db"
    db_path.touch()
    db_path.chmod(0o640)

    async def open_and_close() -> None:
        async with await Store.open(db_path):
            pass

    asyncio.run(open_and_close())
    assert mode(db_path) == 0o640 and mode(tmp_path) == 0o755  # whoever made them chose


async def test_processes_opening_one_new_database_at_once_all_succeed(db_path: Path) -> None:
    """busy_timeout is set before journal_mode, and migrate() re-reads the version under its
    lock, so none of them fails "database is locked" or re-runs a migration."""
    for attempt in range(3):
        path = db_path.with_name(f"fresh{attempt}.db")
        stores = await asyncio.gather(*(Store.open(path) for _ in range(6)))
        for opened in stores:
            await opened.close()
        assert raw(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


async def test_memory_database_and_close_twice() -> None:
    store = await Store.open(":memory:")
    await new_session(store)
    assert len(await store.list_sessions()) == 1
    await store.close()
    await store.close()


async def test_one_persons_search_looks_through_their_sessions_not_the_whole_index(
    store: Store, db_path: Path
) -> None:
    """The bot's searches name their owner: each of that person's sessions is looked
    through (fast however common the word), never the full list of matching versions the
    trigram index gives (hundreds of thousands for a common word); everyone's search still
    goes through the index."""
    mine, _ = _list_query(
        owner="alice", platform="slack", workspace="T1", limit=50, search="savefig"
    )
    everyone, _ = _list_query(owner=None, platform=None, workspace=None, limit=50, search="savefig")

    assert "versions_search" not in mine and "sessions_owner_recent" in " | ".join(
        str(row[3])
        for row in raw(db_path, "EXPLAIN QUERY PLAN " + mine, "alice", "slack", "T1",
                       "%savefig%", "%savefig%", "%savefig%", "%savefig%", 50)
    )  # fmt: skip
    assert "versions_search MATCH" in everyone


@pytest.mark.parametrize("with_versions", [False, True])
async def test_owner_listing_uses_the_index_without_sorting(
    store: Store, db_path: Path, with_versions: bool
) -> None:
    sql, params = _list_query(
        owner="alice", platform="slack", workspace="T1", limit=50, with_versions=with_versions
    )

    plan = " | ".join(str(row[3]) for row in raw(db_path, "EXPLAIN QUERY PLAN " + sql, *params))

    assert "sessions_owner_recent" in plan
    assert "TEMP B-TREE" not in plan
    assert "SCAN" not in plan


async def test_a_claim_reads_only_unfinished_jobs(store: Store, db_path: Path) -> None:
    found = raw(db_path, "EXPLAIN QUERY PLAN " + _CLAIMABLE, 0, 0)
    plan = " | ".join(str(row[3]) for row in found)

    assert "SCAN j USING INDEX jobs_queue" in plan  # the partial index: finished jobs left out
    assert "TEMP B-TREE" not in plan


# -- readers and the writer -----------------------------------------------------------------


async def test_store_open_is_sqlite_for_a_path(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        assert isinstance(store, SqliteStore)
        assert repr(store) == f"SqliteStore({str(db_path)!r})"


async def test_reads_proceed_while_a_write_transaction_is_open(db_path: Path) -> None:
    """Another process holds the write lock; the store's own write waits for it on the
    writer's thread, and meanwhile many reads at once all finish, on the readers."""
    async with await SqliteStore.open(db_path, readers=4) as store:
        session_id = await new_session(store)
        await add(store, session_id)
        with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE sessions SET title = 'held'")
            write = asyncio.create_task(add(store, session_id))
            await asyncio.sleep(0.05)
            assert not write.done()  # waiting for the other process's lock

            start = time.monotonic()
            async with asyncio.timeout(3):
                versions, sessions = await asyncio.gather(
                    asyncio.gather(*(store.list_versions(session_id) for _ in range(100))),
                    asyncio.gather(*(store.list_sessions(owner="alice") for _ in range(100))),
                )
            elapsed = time.monotonic() - start

            assert not write.done()  # every read finished while the write still waited
            assert elapsed < 2  # far less than busy_timeout: nobody waited for the lock
            assert [len(found) for found in versions] == [1] * 100
            assert [[s.title for s in found] for found in sessions] == [["t1"]] * 100
            other.execute("COMMIT")
        assert await write == 2


async def test_reads_do_not_queue_behind_the_stores_own_writes(db_path: Path) -> None:
    """A burst of writes and reads together: each read sees a consistent snapshot and the
    writes keep their order (distinct consecutive numbers)."""
    async with await SqliteStore.open(db_path) as store:
        session_id = await new_session(store)
        results = await asyncio.gather(
            *(add(store, session_id) for _ in range(30)),
            *(store.list_versions(session_id) for _ in range(30)),
        )
    numbers = [r for r in results if isinstance(r, int)]
    assert sorted(numbers) == list(range(1, 31))
    for versions in (r for r in results if isinstance(r, list)):
        assert [v.number for v in versions] == list(range(1, len(versions) + 1))


async def test_writes_committed_together_still_fail_alone(db_path: Path) -> None:
    """A burst of writes shares commits (each in a savepoint): one that fails is rolled back
    alone and its caller gets its own error; the others are kept."""
    async with await SqliteStore.open(db_path) as store:
        session_id = await new_session(store)
        bad = store.add_version(
            session_id, request="r", code="c", note="", model="m",
            prompt_tokens=None, completion_tokens=None, latency_ms=1,
            status="weird",  # type: ignore[arg-type]
        )  # fmt: skip
        results = await asyncio.gather(
            *(add(store, session_id) for _ in range(20)),
            add(store, 404),
            bad,
            *(add(store, session_id) for _ in range(20)),
            return_exceptions=True,
        )

    assert isinstance(results[20], SessionGone) and isinstance(results[21], ConstraintViolation)
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 41))
    assert raw(db_path, "SELECT COUNT(*), MAX(number) FROM versions") == [(40, 40)]


# -- secure delete ---------------------------------------------------------------------------


def file_bytes(db_path: Path) -> bytes:
    """The database and its WAL as they are on disk, after a checkpoint that empties the WAL."""
    assert raw(db_path, "PRAGMA wal_checkpoint(TRUNCATE)")[0][0] == 0  # not busy: it ran
    wal = db_path.with_name(db_path.name + "-wal")
    return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_deleted_content_is_overwritten_in_the_file(store: Store, db_path: Path) -> None:
    session_id = await new_session(store)
    doomed_session = await new_session(store, "t2")
    small = b"small-secret-d41d8cd98f00b204"  # lives in its row
    large = random.Random(11).randbytes(30_000)  # spills onto overflow pages
    old = b"replaced-secret-9e107d9d372bb682"
    snippet = "print('snippet-secret-e4d909c290d0fb1c')"
    await store.add_file(session_id, "small.txt", small)
    await store.add_file(session_id, "large.bin", large)
    await store.add_file(session_id, "replaced.txt", old)
    await store.add_file(session_id, "kept.txt", b"kept-marker-0cc175b9c0f1b6a8")
    await store.add_version(
        doomed_session, request="r", code=snippet, note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip
    await store.add_file(doomed_session, "doomed.bin", large[::-1])
    chunks = [large[i : i + 32] for i in range(0, len(large), 1000)]
    reversed_chunks = [large[::-1][i : i + 32] for i in range(0, len(large), 1000)]
    secrets = [small, old, snippet.encode(), *chunks, *reversed_chunks]
    before = file_bytes(db_path)
    assert all(secret in before for secret in secrets)  # the check can see them

    await store.delete_file(session_id, "small.txt")
    await store.delete_file(session_id, "large.bin")
    await store.add_file(session_id, "replaced.txt", b"new")
    await store.delete_session(doomed_session)

    after = file_bytes(db_path)
    assert b"kept-marker-0cc175b9c0f1b6a8" in after
    assert [secret for secret in secrets if secret in after] == []
