"""Schema migrations: a blank database gets the documented schema, once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiosqlite
import pytest

from storage import StoreError, migrate
from storage.migrations import MIGRATIONS, m001_initial, schema_version


@pytest.fixture
async def conn() -> AsyncIterator[aiosqlite.Connection]:
    async with aiosqlite.connect(":memory:") as conn:
        yield conn


async def rows(conn: aiosqlite.Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in await conn.execute_fetchall(sql)]


async def columns(conn: aiosqlite.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in await rows(conn, f"PRAGMA table_info({table})")]


async def index_columns(conn: aiosqlite.Connection, index: str) -> list[str]:
    return [str(row[2]) for row in await rows(conn, f"PRAGMA index_info({index})")]


async def schema_sql(conn: aiosqlite.Connection) -> list[tuple[object, ...]]:
    return await rows(conn, "SELECT type, name, sql FROM sqlite_schema ORDER BY name")


def test_migration_names_follow_their_version() -> None:
    names = [migration.__name__ for migration in MIGRATIONS]
    assert names[0] == "m001_initial"
    for number, name in enumerate(names, start=1):
        assert re.fullmatch(rf"m{number:03d}_[a-z0-9_]+", name), name


async def test_blank_database_gets_the_schema(conn: aiosqlite.Connection) -> None:
    assert await schema_version(conn) == 0

    assert await migrate(conn) == len(MIGRATIONS)

    assert await schema_version(conn) == len(MIGRATIONS)
    tables = {str(r[0]) for r in await rows(conn, "SELECT name FROM sqlite_schema")}
    assert {"sessions", "versions"} <= tables
    assert await columns(conn, "sessions") == [
        "id", "platform", "workspace", "channel", "thread", "owner", "language", "model",
        "title", "created_at", "updated_at",
    ]  # fmt: skip
    assert await columns(conn, "versions") == [
        "id", "session_id", "number", "request", "code", "note", "model", "prompt_tokens",
        "completion_tokens", "latency_ms", "status", "created_at",
    ]  # fmt: skip

    # name, unique? for each index, then the columns of the ones that matter.
    session_indexes = {str(r[1]): r[2] for r in await rows(conn, "PRAGMA index_list(sessions)")}
    assert session_indexes["sessions_owner_recent"] == 0
    assert session_indexes["sessions_recent"] == 0
    place_index = await index_columns(conn, "sessions_place_recent")
    assert place_index == ["platform", "workspace", "updated_at"]
    owner_index = await index_columns(conn, "sessions_owner_recent")
    assert owner_index == ["owner", "platform", "workspace", "updated_at"]
    unique = [name for name, is_unique in session_indexes.items() if is_unique]
    assert [await index_columns(conn, name) for name in unique] == [
        ["platform", "workspace", "channel", "thread"]
    ]
    version_indexes = await rows(conn, "PRAGMA index_list(versions)")
    assert [await index_columns(conn, str(r[1])) for r in version_indexes if r[2]] == [
        ["session_id", "number"]
    ]

    # (table, from, to, on_delete) of each foreign key.
    foreign_keys = await rows(conn, "PRAGMA foreign_key_list(versions)")
    assert [(r[2], r[3], r[4], r[6]) for r in foreign_keys] == [
        ("sessions", "session_id", "id", "CASCADE")
    ]


async def test_migrate_is_idempotent(conn: aiosqlite.Connection) -> None:
    first = await migrate(conn)
    before = await schema_sql(conn)

    assert await migrate(conn) == first
    assert await schema_sql(conn) == before


async def test_partial_database_gets_only_the_missing_migrations(
    conn: aiosqlite.Connection,
) -> None:
    calls: list[str] = []

    async def m002_extra(conn: aiosqlite.Connection) -> None:
        calls.append("m002")
        await conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)")

    assert await migrate(conn, migrations=[m001_initial]) == 1
    assert await migrate(conn, migrations=[m001_initial, m002_extra]) == 2
    assert await migrate(conn, migrations=[m001_initial, m002_extra]) == 2
    assert calls == ["m002"]


async def test_failed_migration_rolls_back(conn: aiosqlite.Connection) -> None:
    async def m002_broken(conn: aiosqlite.Connection) -> None:
        await conn.execute("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await migrate(conn, migrations=[m001_initial, m002_broken])

    assert await schema_version(conn) == 1
    assert await rows(conn, "SELECT name FROM sqlite_schema WHERE name = 'half_done'") == []
    assert not conn.in_transaction


async def test_newer_database_is_refused(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")

    with pytest.raises(StoreError, match="newer"):
        await migrate(conn)
