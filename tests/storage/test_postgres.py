"""PostgreSQL's store in particular: picking it by URL, its migrations (the same steps as
SQLite's, safe when replicas start together), its indexes, search without pg_trgm, and what
opening an unreachable server raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from storage import (
    PostgresStore,
    SessionKey,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
    postgres_migrations,
)
from storage import migrations as sqlite_migrations
from storage.postgres import _list_query, _redacted
from storage.protocol import is_postgres_url
from tests.storage.conftest import with_database


@pytest.fixture
async def conn(postgres_db: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to this test's blank schema."""
    conn = await asyncpg.connect(postgres_db)
    try:
        yield conn
    finally:
        await conn.close()


async def names(conn: Any, sql: str) -> list[str]:
    return [str(row[0]) for row in await conn.fetch(sql)]


async def add_session(store: Store, thread: str, owner: str = "alice") -> int:
    key = SessionKey(platform="slack", workspace="T1", channel="C1", thread=thread)
    session = await store.create_session(
        key=key, owner=owner, language="python", model="fake", title=thread
    )
    return session.id


# -- picking the backend ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("postgresql://u:p@db.internal/codethread", True),
        ("postgres://db.internal/codethread", True),
        ("PostgreSQL://db/codethread", True),
        (Path("postgresql://u@db/codethread"), True),  # CODETHREAD_DB read into a Path
        ("postgresql:/u@db/codethread", True),  # and then str() of it
        ("postgresql.db", False),
        ("/var/lib/postgresql/codethread.db", False),
        (Path("data/postgresql:/x.db"), False),
        (":memory:", False),
    ],
)
def test_a_url_names_postgresql_anything_else_a_sqlite_file(
    target: str | Path, expected: bool
) -> None:
    assert is_postgres_url(target) is expected


async def test_store_open_is_postgres_for_a_url(postgres_db: str) -> None:
    async with await Store.open(postgres_db) as store:
        assert isinstance(store, PostgresStore)
        assert repr(store).startswith("PostgresStore('postgresql://postgres@/codethread?")


@pytest.mark.parametrize("folded", [Path, lambda url: str(Path(url))])
async def test_a_url_read_into_a_path_still_opens_postgresql(postgres_db: str, folded: Any) -> None:
    async with await open_store(folded(postgres_db)) as store:
        assert isinstance(store, PostgresStore)
        assert await store.list_sessions() == []


def test_the_password_is_never_shown() -> None:
    assert _redacted("postgresql://bot:s3cret@db:5432/ct") == "postgresql://bot:***@db:5432/ct"
    assert _redacted("postgresql://bot@db/ct") == "postgresql://bot@db/ct"


async def test_an_unreachable_server_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="Cannot connect"):
        await open_store(f"postgresql://bot:s3cret@/codethread?host={tmp_path}")


async def test_a_missing_database_is_store_unavailable(postgres_dsn: str) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist") as caught:
        await open_store(with_database(postgres_dsn, "no_such_database"))
    assert isinstance(caught.value, StoreError)


async def test_not_a_url_is_refused_by_the_postgres_store() -> None:
    with pytest.raises(ValueError):
        await PostgresStore.open("/tmp/codethread.db")


# -- migrations ------------------------------------------------------------------------------


def test_both_dialects_have_the_same_steps() -> None:
    sqlite_names = [step.__name__ for step in sqlite_migrations.MIGRATIONS]
    postgres_names = [step.__name__ for step in postgres_migrations.MIGRATIONS]
    assert postgres_names == sqlite_names


async def test_a_blank_schema_gets_every_step_once_recorded(conn: Any) -> None:
    assert await postgres_migrations.schema_version(conn) == 0

    assert await postgres_migrations.migrate(conn) == len(postgres_migrations.MIGRATIONS) == 9
    assert await postgres_migrations.migrate(conn) == 9  # idempotent

    recorded = await names(conn, "SELECT name FROM schema_migrations ORDER BY version")
    assert recorded == [step.__name__ for step in postgres_migrations.MIGRATIONS]


async def test_the_tables_have_sqlites_columns(conn: Any) -> None:
    """The same tables and columns, in the same order, as the SQLite schema (its FTS5 table
    aside), so that one SELECT list reads either."""
    await postgres_migrations.migrate(conn)
    async with aiosqlite.connect(":memory:") as lite:
        await sqlite_migrations.migrate(lite)
        tables = [
            str(row[0])
            for row in await lite.execute_fetchall(
                "SELECT name FROM sqlite_schema WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'versions_search%'"
            )
        ]
        expected = {
            table: [str(r[1]) for r in await lite.execute_fetchall(f"PRAGMA table_info({table})")]
            for table in tables
        }
    found = {}
    for table in tables:
        found[table] = await names(
            conn,
            "SELECT column_name FROM information_schema.columns"
            f" WHERE table_schema = current_schema() AND table_name = '{table}'"
            " ORDER BY ordinal_position",
        )
    assert found == expected
    assert len(tables) == 11


async def test_triggers_and_indexes(conn: Any) -> None:
    await postgres_migrations.migrate(conn)

    triggers = await names(
        conn,
        "SELECT DISTINCT trigger_name FROM information_schema.triggers"
        " WHERE trigger_schema = current_schema() ORDER BY 1",
    )
    indexes = await names(
        conn, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
    )

    assert triggers == [
        "failures_latest_only", "failures_touch_session", "files_replaced_touch_session",
        "files_touch_session", "versions_clear_failures", "versions_touch_session",
    ]  # fmt: skip
    assert {
        "sessions_owner_recent", "versions_request_trgm", "versions_note_trgm",
        "versions_code_trgm", "jobs_queue", "jobs_open", "jobs_running", "jobs_finished",
        "rate_hits_key",
    } <= set(indexes)  # fmt: skip


async def test_replicas_opening_one_blank_database_at_once_migrate_it_once(
    postgres_db: str,
) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(postgres_db) for _ in range(5)))
    for store in stores:
        await store.close()

    conn = await asyncpg.connect(postgres_db)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM schema_migrations") == 9
    finally:
        await conn.close()


async def test_a_failed_step_rolls_back(conn: Any) -> None:
    async def m002_broken(conn: Any) -> None:
        await conn.execute("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    steps = [postgres_migrations.m001_initial, m002_broken]
    with pytest.raises(RuntimeError, match="boom"):
        await postgres_migrations.migrate(conn, migrations=steps)

    assert await postgres_migrations.schema_version(conn) == 1
    assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    assert not conn.is_in_transaction()


async def test_a_newer_database_is_refused(conn: Any) -> None:
    await postgres_migrations.migrate(conn)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)",
        len(postgres_migrations.MIGRATIONS) + 1,
    )

    with pytest.raises(StoreError, match="newer"):
        await postgres_migrations.migrate(conn)


# -- queries and indexes ---------------------------------------------------------------------


async def plan(conn: Any, sql: str, params: list[Any]) -> str:
    """The plan with sequential scans priced out: which indexes the query *can* use (the
    planner rightly prefers a scan of a table this small)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN " + sql, *params)
    return "\n".join(str(row[0]) for row in rows)


async def test_search_can_use_the_trigram_indexes(postgres_db: str, conn: Any) -> None:
    async with await open_store(postgres_db) as store:
        session_id = await add_session(store, "chart")
        await store.add_version(
            session_id, request="draw", code="plt.savefig('a.png')", note="", model="m",
            prompt_tokens=None, completion_tokens=None, latency_ms=1,
        )  # fmt: skip
    sql, params = _list_query(owner=None, platform=None, workspace=None, limit=50, search="savefig")

    found = await plan(conn, sql, params)

    assert "versions_code_trgm" in found and "versions_request_trgm" in found


async def test_one_persons_search_reads_their_sessions_versions_by_index(
    postgres_db: str, conn: Any
) -> None:
    """The bot's searches name their owner: a correlated EXISTS through the versions'
    (session_id, number) index, not an IN list of every matching version in the database
    (which a common word makes too large to hash, and so scanned again per session)."""
    async with await open_store(postgres_db):
        pass
    sql, params = _list_query(owner="U7", platform="slack", workspace="T1", limit=10, search="x")

    found = await plan(conn, sql, params)

    assert "IN (SELECT" not in sql and "v.session_id = s.id" in sql
    assert "versions_session_id_number_key" in found, found


async def test_the_owner_listing_reads_its_index_without_sorting(
    postgres_db: str, conn: Any
) -> None:
    async with await open_store(postgres_db):
        pass
    await conn.executemany(
        "INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,"
        " title, created_at, updated_at) VALUES ('slack', 'T1', 'C1', $1, $2, 'python', 'm',"
        " 't', $3, $3)",
        [(str(n), f"U{n % 10}", float(n)) for n in range(2000)],
    )
    await conn.execute("ANALYZE sessions")
    sql, params = _list_query(owner="U7", platform="slack", workspace="T1", limit=10)

    found = await plan(conn, sql, params)

    assert "Index Scan Backward using sessions_owner_recent" in found, found
    assert "Sort" not in found


async def test_search_works_without_pg_trgm(postgres_dsn: str) -> None:
    """A role that may not create extensions, on a database without pg_trgm: m006 records
    itself without the indexes, and search scans with the same results."""
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS plain WITH (FORCE)")
        await admin.execute("DROP ROLE IF EXISTS plain")
        await admin.execute("CREATE ROLE plain LOGIN")
        await admin.execute("CREATE DATABASE plain TEMPLATE template0")
        await admin.execute("REVOKE CREATE ON DATABASE plain FROM PUBLIC")
        owner = await asyncpg.connect(with_database(postgres_dsn, "plain"))
        try:
            await owner.execute("GRANT CREATE ON SCHEMA public TO plain")
        finally:
            await owner.close()
        url = with_database(postgres_dsn, "plain").replace("//postgres@", "//plain@")
        async with await open_store(url) as store:
            chart = await add_session(store, "chart")
            await add_session(store, "other")
            await store.add_version(
                chart, request="draw", code="plt.savefig('a.png')", note="Matplotlib", model="m",
                prompt_tokens=None, completion_tokens=None, latency_ms=1,
            )  # fmt: skip
            for text in ("SAVEFIG", "matplotlib", "pl", "char"):
                assert [s.id for s in await store.list_sessions(search=text)] == [chart], text
        plain = await asyncpg.connect(url)
        try:
            assert await plain.fetchval("SELECT COUNT(*) FROM schema_migrations") == 9
            assert await names(plain, "SELECT extname FROM pg_extension") == ["plpgsql"]
        finally:
            await plain.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS plain WITH (FORCE)")
        await admin.execute("DROP ROLE IF EXISTS plain")
        await admin.close()
