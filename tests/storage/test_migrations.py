"""SQLite schema migrations: a blank database gets the documented schema, once."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from storage import StoreError, migrate
from storage.migrations import MIGRATIONS, m001_initial, m002_runs, schema_version


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
    assert names[:4] == [
        "m001_initial", "m002_runs", "m003_version_touches_session", "m004_failures"
    ]  # fmt: skip
    for number, name in enumerate(names, start=1):
        assert re.fullmatch(rf"m{number:03d}_[a-z0-9_]+", name), name


async def test_blank_database_gets_the_schema(conn: aiosqlite.Connection) -> None:
    assert await schema_version(conn) == 0

    assert await migrate(conn) == len(MIGRATIONS)

    assert await schema_version(conn) == len(MIGRATIONS) == 9
    tables = {str(r[0]) for r in await rows(conn, "SELECT name FROM sqlite_schema")}
    assert {"sessions", "versions", "runs", "failures", "files", "artifacts"} <= tables
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

    assert await columns(conn, "runs") == [
        "id", "version_id", "kind", "status", "exit_code", "stdout", "stderr", "duration_ms",
        "peak_memory_kb", "limit_hit", "compile_output", "tests", "created_at", "stdin", "args",
    ]  # fmt: skip
    assert await index_columns(conn, "runs_version") == ["version_id", "id"]
    run_keys = await rows(conn, "PRAGMA foreign_key_list(runs)")
    assert [(r[2], r[3], r[4], r[6]) for r in run_keys] == [
        ("versions", "version_id", "id", "CASCADE")
    ]
    triggers = await rows(conn, "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
    assert sorted(triggers) == [
        ("failures_latest_only", "failures"),
        ("failures_touch_session", "failures"),
        ("files_replaced_touch_session", "files"),
        ("files_touch_session", "files"),
        ("versions_clear_failures", "versions"),
        ("versions_search_add", "versions"),
        ("versions_search_drop", "versions"),
        ("versions_touch_session", "versions"),
    ]

    assert await columns(conn, "failures") == [
        "id", "session_id", "request", "message", "created_at"
    ]  # fmt: skip
    assert await index_columns(conn, "failures_session") == ["session_id", "id"]
    failure_keys = await rows(conn, "PRAGMA foreign_key_list(failures)")
    assert [(r[2], r[3], r[4], r[6]) for r in failure_keys] == [
        ("sessions", "session_id", "id", "CASCADE")
    ]
    # Every column but the key is NOT NULL (notnull is column 3 of table_info).
    not_null = {str(r[1]) for r in await rows(conn, "PRAGMA table_info(failures)") if r[3]}
    assert not_null == {"session_id", "request", "message", "created_at"}

    await check_files_schema(conn)
    await check_durable_schema(conn)


async def check_durable_schema(conn: aiosqlite.Connection) -> None:
    """m008_durable: deliveries, rate hits and jobs, with the indexes their queries use."""
    assert await columns(conn, "deliveries") == ["key", "expires_at"]
    assert await columns(conn, "rate_hits") == ["id", "key", "at", "expires_at"]
    assert await columns(conn, "jobs") == [
        "id", "delivery", "lane", "kind", "payload", "state", "owner", "attempts", "progress",
        "created_at", "claimed_at", "heartbeat_at", "finished_at",
    ]  # fmt: skip
    assert await index_columns(conn, "rate_hits_key") == ["key", "at"]
    assert await index_columns(conn, "jobs_open") == ["lane", "id"]
    partial = {
        str(r[0]): str(r[1])
        for r in await rows(conn, "SELECT name, sql FROM sqlite_schema WHERE tbl_name = 'jobs'")
    }
    assert "WHERE state IN ('queued', 'running')" in partial["jobs_open"]
    unique = [r for r in await rows(conn, "PRAGMA index_list(jobs)") if r[2]]
    assert [await index_columns(conn, str(r[1])) for r in unique] == [["delivery"]]


async def check_files_schema(conn: aiosqlite.Connection) -> None:
    """m007_files: attached files per session, artifacts per run, unique by name in each."""
    for table, owner, parent, extra in [
        ("files", "session_id", "sessions", ["created_at"]),
        ("artifacts", "run_id", "runs", []),
    ]:
        assert await columns(conn, table) == ["id", owner, "name", "size", "data", *extra]
        indexes = await rows(conn, f"PRAGMA index_list({table})")
        assert [await index_columns(conn, str(r[1])) for r in indexes] == [[owner, "name"]]
        assert all(r[2] for r in indexes)  # unique, and it serves the cascade
        keys = await rows(conn, f"PRAGMA foreign_key_list({table})")
        assert [(r[2], r[3], r[4], r[6]) for r in keys] == [(parent, owner, "id", "CASCADE")]
        not_null = {str(r[1]) for r in await rows(conn, f"PRAGMA table_info({table})") if r[3]}
        assert not_null == {owner, "name", "size", "data", *extra}


async def test_migrate_is_idempotent(conn: aiosqlite.Connection) -> None:
    first = await migrate(conn)
    before = await schema_sql(conn)

    assert await migrate(conn) == first
    assert await schema_sql(conn) == before


async def test_a_v1_database_with_data_migrates_to_the_latest_keeping_it(
    conn: aiosqlite.Connection,
) -> None:
    assert await migrate(conn, migrations=[m001_initial]) == 1
    await conn.execute(
        "INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,"
        " title, created_at, updated_at)"
        " VALUES ('slack', 'T1', 'C1', 't1', 'alice', 'python', 'fake', 'title', 1.0, 2.0)"
    )
    await conn.execute(
        "INSERT INTO versions (session_id, number, request, code, note, model, prompt_tokens,"
        " completion_tokens, latency_ms, status, created_at)"
        " VALUES (1, 1, 'make it', 'print(1)', '', 'fake', 3, 4, 5, 'ok', 2.0)"
    )
    await conn.commit()
    sessions_before = await rows(conn, "SELECT * FROM sessions")
    versions_before = await rows(conn, "SELECT * FROM versions")

    assert await migrate(conn) == len(MIGRATIONS)

    assert await rows(conn, "SELECT * FROM sessions") == sessions_before
    assert await rows(conn, "SELECT * FROM versions") == versions_before
    await conn.execute(
        "INSERT INTO runs (version_id, kind, status, exit_code, stdout, stderr, duration_ms,"
        " peak_memory_kb, limit_hit, compile_output, created_at)"
        " VALUES (1, 'run', 'ok', 0, '1', '', 12, 9000, NULL, '', 3.0)"
    )
    assert await rows(conn, "SELECT version_id, status FROM runs") == [(1, "ok")]
    await conn.execute(
        "INSERT INTO failures (session_id, request, message, created_at)"
        " VALUES (1, 'again', 'server down', 4.0)"
    )
    assert await rows(conn, "SELECT session_id, request FROM failures") == [(1, "again")]


async def test_a_v6_database_with_data_gets_files_and_artifacts(
    conn: aiosqlite.Connection,
) -> None:
    assert await migrate(conn, migrations=MIGRATIONS[:6]) == 6
    await conn.execute(
        "INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,"
        " title, created_at, updated_at)"
        " VALUES ('slack', 'T1', 'C1', 't1', 'alice', 'python', 'fake', 'title', 1.0, 2.0)"
    )
    await conn.execute(
        "INSERT INTO versions (session_id, number, request, code, note, model, prompt_tokens,"
        " completion_tokens, latency_ms, status, created_at)"
        " VALUES (1, 1, 'make it', 'print(1)', '', 'fake', 3, 4, 5, 'ok', 2.0)"
    )
    await conn.execute(
        "INSERT INTO runs (version_id, kind, status, exit_code, stdout, stderr, duration_ms,"
        " peak_memory_kb, limit_hit, compile_output, created_at)"
        " VALUES (1, 'run', 'ok', 0, '1', '', 12, 9000, NULL, '', 3.0)"
    )
    await conn.commit()
    before = {t: await rows(conn, f"SELECT * FROM {t}") for t in ("sessions", "versions", "runs")}

    assert await migrate(conn) == len(MIGRATIONS)

    assert {t: await rows(conn, f"SELECT * FROM {t}") for t in before} == before
    await check_files_schema(conn)
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute(
        "INSERT INTO files (session_id, name, size, data, created_at)"
        " VALUES (1, 'in.csv', 3, X'610a62', 5.0)"
    )
    assert await rows(conn, "SELECT updated_at FROM sessions") == [(5.0,)]  # attaching touches
    await conn.execute(
        "INSERT INTO artifacts (run_id, name, size, data) VALUES (1, 'out.png', 1, X'89')"
    )
    await conn.execute("DELETE FROM sessions")
    assert await rows(conn, "SELECT COUNT(*) FROM files") == [(0,)]
    assert await rows(conn, "SELECT COUNT(*) FROM artifacts") == [(0,)]


async def test_a_v7_database_with_data_gets_the_durable_tables(
    conn: aiosqlite.Connection,
) -> None:
    assert await migrate(conn, migrations=MIGRATIONS[:7]) == 7
    await conn.execute(
        "INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,"
        " title, created_at, updated_at)"
        " VALUES ('slack', 'T1', 'C1', 't1', 'alice', 'python', 'fake', 'title', 1.0, 2.0)"
    )
    await conn.commit()
    before = await rows(conn, "SELECT * FROM sessions")

    assert await migrate(conn) == len(MIGRATIONS)

    assert await rows(conn, "SELECT * FROM sessions") == before
    await check_durable_schema(conn)
    await conn.execute(
        "INSERT INTO jobs (delivery, lane, kind, payload, created_at)"
        " VALUES ('d1', 'slack:T1:C1:t1', 'turn', '{}', 3.0)"
    )
    assert await rows(conn, "SELECT state, attempts FROM jobs") == [("queued", 0)]
    for bad in ("'[]'", "'not json'"):  # a payload is a JSON object
        with pytest.raises(sqlite3.IntegrityError):
            await conn.execute(
                "INSERT INTO jobs (delivery, lane, kind, payload, created_at)"
                f" VALUES ('d2', 'l', 'turn', {bad}, 3.0)"
            )


async def test_connections_migrating_one_new_file_at_once_apply_each_step_once(
    tmp_path: Path,
) -> None:
    """Two processes starting together: the second waits for the first's migration, then finds
    nothing left to do (not "table sessions already exists")."""
    path = tmp_path / "fresh.db"
    conns = [await aiosqlite.connect(path, isolation_level=None) for _ in range(4)]
    try:
        for each in conns:
            await each.execute("PRAGMA busy_timeout = 5000")
        assert await asyncio.gather(*(migrate(each) for each in conns)) == [len(MIGRATIONS)] * 4
        assert await schema_version(conns[0]) == len(MIGRATIONS)
    finally:
        for each in conns:
            await each.close()


async def test_partial_database_gets_only_the_missing_migrations(
    conn: aiosqlite.Connection,
) -> None:
    calls: list[str] = []

    async def m003_extra(conn: aiosqlite.Connection) -> None:
        calls.append("m003")
        await conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)")

    assert await migrate(conn, migrations=[m001_initial]) == 1
    assert await migrate(conn, migrations=[m001_initial, m002_runs, m003_extra]) == 3
    assert await migrate(conn, migrations=[m001_initial, m002_runs, m003_extra]) == 3
    assert calls == ["m003"]


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
