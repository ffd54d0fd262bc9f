"""The session store: sessions keyed by their thread, their numbered versions, runs, failures,
attached files and the files runs produced.

One :class:`Store` owns one aiosqlite connection (one worker thread). Every statement runs
under the store's asyncio lock, and every write is either one statement (atomic by itself, such
as ``INSERT … RETURNING``) or an explicit ``BEGIN IMMEDIATE`` transaction, so tasks sharing a
store never see each other's half-done writes, and processes sharing the file (WAL mode,
``busy_timeout``) serialize their writers. All values are bound parameters.

Deleted content (``secure_delete``) is overwritten with zeros in the database file rather than
left in free pages. In WAL mode the frames that once wrote it stay in the ``-wal`` file until
writes after a checkpoint overwrite them, or the file is emptied (the last connection closing
deletes it; ``PRAGMA wal_checkpoint(TRUNCATE)`` empties it at once). The search index
(m006_search) drops a deleted version's trigrams only when FTS5 merges its segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import aiosqlite

from .errors import SessionExists, SessionGone, VersionNotFound
from .migrations import migrate
from .records import (
    Failure,
    Run,
    RunArtifact,
    RunKind,
    RunLimit,
    RunStatus,
    Session,
    SessionFile,
    SessionKey,
    Version,
    VersionStatus,
)

__all__ = ["Store"]

Clock = Callable[[], float]

BUSY_TIMEOUT_MS = 5000

_SESSION_SELECT = """
SELECT s.id, s.platform, s.workspace, s.channel, s.thread, s.owner, s.language, s.model,
       s.title, s.created_at, s.updated_at,
       (SELECT COUNT(*) FROM versions AS v WHERE v.session_id = s.id) AS version_count
FROM sessions AS s
"""

_VERSION_SELECT = """
SELECT id, session_id, number, request, code, note, model, prompt_tokens, completion_tokens,
       latency_ms, status, created_at
FROM versions
"""

_RUN_SELECT = """
SELECT id, version_id, kind, status, exit_code, stdout, stderr, duration_ms, peak_memory_kb,
       limit_hit, compile_output, tests, created_at, stdin, args,
       (SELECT json_group_array(a.name) FROM artifacts AS a WHERE a.run_id = runs.id)
           AS artifacts
FROM runs
"""

_FAILURE_COLUMNS = "id, session_id, request, message, created_at"
_FILE_COLUMNS = "id, session_id, name, size, data, created_at"
_ARTIFACT_COLUMNS = "id, run_id, name, size, data"

# The only columns list_sessions() may filter on; SQL text is built from these constant names,
# never from values.
_LIST_FILTERS = ("owner", "platform", "workspace")

_HAS_VERSION = "EXISTS (SELECT 1 FROM versions AS v WHERE v.session_id = s.id)"
# The title, or any version's request, note or code: through the trigram index for three
# characters or more (m006_search), by a scan for shorter text, which trigrams cannot match.
_MATCHES = (
    "(s.title LIKE ? ESCAPE '\\' OR s.id IN (SELECT v.session_id FROM versions_search AS f"
    " JOIN versions AS v ON v.id = f.rowid WHERE versions_search MATCH ?))"
)
_MATCHES_SHORT = (
    "(s.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM versions AS v"
    " WHERE v.session_id = s.id AND (v.request LIKE ? ESCAPE '\\'"
    " OR v.note LIKE ? ESCAPE '\\' OR v.code LIKE ? ESCAPE '\\')))"
)


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards in ``text`` taken literally (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _list_query(
    *,
    owner: str | None,
    platform: str | None,
    workspace: str | None,
    limit: int,
    search: str | None = None,
    with_versions: bool = False,
) -> tuple[str, list[Any]]:
    """SQL and parameters for :meth:`Store.list_sessions` (separate so tests can EXPLAIN it)."""
    given = dict(zip(_LIST_FILTERS, (owner, platform, workspace), strict=True))
    where = [f"s.{name} = ?" for name, value in given.items() if value is not None]
    params: list[Any] = [value for value in given.values() if value is not None]
    if with_versions:
        where.append(_HAS_VERSION)
    if search and len(search) >= 3:
        where.append(_MATCHES)
        params += [_like_pattern(search), '"' + search.replace('"', '""') + '"']
    elif search:
        where.append(_MATCHES_SHORT)
        params += [_like_pattern(search)] * 4
    sql = _SESSION_SELECT
    if where:
        sql += "WHERE " + " AND ".join(where) + "\n"
    sql += "ORDER BY s.updated_at DESC, s.id DESC\nLIMIT ?"
    params.append(limit)
    return sql, params


def _prepare_path(path: str | Path) -> str:
    """The database name for sqlite3, with the file's parent directories created.

    The database holds users' code and requests, so a directory made here is 0700 and a new
    file 0600 (SQLite gives its -wal and -shm files the database file's mode). An existing
    directory or file keeps its mode: whoever made it chose it.
    """
    if str(path) == ":memory:":
        return ":memory:"
    file = Path(path).expanduser()
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return str(file)


async def _use_wal(conn: aiosqlite.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection is switching the same
    new file (for BUSY_TIMEOUT_MS at most).

    The switch reads the header, then asks for the exclusive lock while still reading; SQLite
    does not wait from inside a read (two such waiters would deadlock) but fails SQLITE_BUSY at
    once, busy_timeout or not. A file already in WAL mode needs no lock: the first try returns.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            busy = err.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.005)


def _session(row: sqlite3.Row) -> Session:
    return Session(
        id=row["id"],
        key=SessionKey(
            platform=row["platform"],
            workspace=row["workspace"],
            channel=row["channel"],
            thread=row["thread"],
        ),
        owner=row["owner"],
        language=row["language"],
        model=row["model"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version_count=row["version_count"],
    )


def _version(row: sqlite3.Row) -> Version:
    return Version(
        id=row["id"],
        session_id=row["session_id"],
        number=row["number"],
        request=row["request"],
        code=row["code"],
        note=row["note"],
        model=row["model"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        latency_ms=row["latency_ms"],
        status=cast(VersionStatus, row["status"]),  # only 'ok' is ever written
        created_at=row["created_at"],
    )


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        version_id=row["version_id"],
        kind=cast(RunKind, row["kind"]),  # CHECK constraints keep these to their values
        status=cast(RunStatus, row["status"]),
        exit_code=row["exit_code"],
        stdout=row["stdout"],
        stderr=row["stderr"],
        duration_ms=row["duration_ms"],
        peak_memory_kb=row["peak_memory_kb"],
        limit_hit=cast(RunLimit | None, row["limit_hit"]),
        compile_output=row["compile_output"],
        tests=row["tests"],
        created_at=row["created_at"],
        stdin=row["stdin"],
        args=tuple(json.loads(row["args"])),
        artifacts=tuple(sorted(json.loads(row["artifacts"]))),  # as list_artifacts() orders
    )


def _file(row: sqlite3.Row) -> SessionFile:
    return SessionFile(
        id=row["id"],
        session_id=row["session_id"],
        name=row["name"],
        size=row["size"],
        data=row["data"],
        created_at=row["created_at"],
    )


def _artifact(row: sqlite3.Row) -> RunArtifact:
    return RunArtifact(
        id=row["id"], run_id=row["run_id"], name=row["name"], size=row["size"], data=row["data"]
    )


def _failure(row: sqlite3.Row) -> Failure:
    return Failure(
        id=row["id"],
        session_id=row["session_id"],
        request=row["request"],
        message=row["message"],
        created_at=row["created_at"],
    )


class Store:
    """Async access to the sessions database. Build it with :meth:`open`; close it when done.

    ``async with await Store.open(path) as store:`` closes it on exit.
    """

    def __init__(self, conn: aiosqlite.Connection, *, name: str, clock: Clock = time.time) -> None:
        """Wrap an open, migrated connection; prefer :meth:`open`."""
        self._conn = conn
        self._name = name
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, clock: Clock = time.time) -> Store:
        """Open (creating it and its parent directories if needed) and migrate a database.

        ``":memory:"`` gives a private in-memory database. ``clock`` supplies the unix-seconds
        timestamps stored in ``created_at``/``updated_at``.
        """
        target = await asyncio.to_thread(_prepare_path, path)
        # isolation_level=None: no implicit transactions; the store issues BEGIN/COMMIT itself.
        conn = await aiosqlite.connect(target, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            # busy_timeout first, so that everything after it (the WAL switch included) waits
            # for another process opening the same database, not fails "database is locked".
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await _use_wal(conn)
            # Users delete snippets and files expecting them gone: zero what a delete frees.
            await conn.execute("PRAGMA secure_delete = ON")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, name=target, clock=clock)

    async def close(self) -> None:
        """Finish queued work and close the connection. Safe to call twice."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                await self._conn.execute("PRAGMA optimize")
            finally:
                await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Store({self._name!r})"

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(
        self, *, key: SessionKey, owner: str, language: str, model: str, title: str
    ) -> Session:
        """Start a session in ``key``'s thread; :class:`SessionExists` if one is there already."""
        now = self._clock()
        async with self._transaction() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO sessions (platform, workspace, channel, thread, owner, language,
                                      model, title, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (platform, workspace, channel, thread) DO NOTHING
                """,
                (key.platform, key.workspace, key.channel, key.thread, owner, language, model,
                 title, now, now),
            )  # fmt: skip
            inserted, session_id = cursor.rowcount, cursor.lastrowid
            await cursor.close()
        if inserted != 1 or session_id is None:
            raise SessionExists(key)
        return Session(
            id=session_id,
            key=key,
            owner=owner,
            language=language,
            model=model,
            title=title,
            created_at=now,
            updated_at=now,
            version_count=0,
        )

    async def get_session(self, session_id: int) -> Session | None:
        rows = await self._fetchall(_SESSION_SELECT + "WHERE s.id = ?", (session_id,))
        return _session(rows[0]) if rows else None

    async def find_session(self, key: SessionKey) -> Session | None:
        """The session living in ``key``'s thread, if any."""
        rows = await self._fetchall(
            _SESSION_SELECT
            + "WHERE s.platform = ? AND s.workspace = ? AND s.channel = ? AND s.thread = ?",
            (key.platform, key.workspace, key.channel, key.thread),
        )
        return _session(rows[0]) if rows else None

    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        platform: str | None = None,
        workspace: str | None = None,
        limit: int = 50,
        search: str | None = None,
        with_versions: bool = False,
    ) -> list[Session]:
        """Sessions matching every filter given, most recently updated first (ties: newest id).

        ``search`` keeps sessions whose title or any version's request, note or code contains
        the text (case-insensitive for ASCII; ``%`` and ``_`` match themselves);
        ``with_versions`` leaves out sessions without a version yet (a failed first ask, a
        non-code answer).
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        sql, params = _list_query(
            owner=owner,
            platform=platform,
            workspace=workspace,
            limit=limit,
            search=search,
            with_versions=with_versions,
        )
        return [_session(row) for row in await self._fetchall(sql, params)]

    async def prune_empty(self, older_than: float) -> int:
        """Delete the sessions without a version that nobody touched for ``older_than``
        seconds (a failed first ask, a non-code answer: they would pile up in lists);
        returns how many. A failure recorded later touches its session, so a session whose
        request can still be retried is kept as long as its other sessions would be."""
        cutoff = self._clock() - older_than
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM sessions AS s WHERE s.updated_at < ? AND NOT " + _HAS_VERSION,
                (cutoff,),
            )
            deleted = cursor.rowcount
            await cursor.close()
        return deleted

    async def delete_session(self, session_id: int) -> bool:
        """Delete a session and (by cascade) its versions, runs, failures, files and the runs'
        artifacts; False if none."""
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            deleted = cursor.rowcount
            await cursor.close()
        return deleted > 0

    # -- versions ---------------------------------------------------------------------------

    async def add_version(
        self,
        session_id: int,
        *,
        request: str,
        code: str,
        note: str,
        model: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency_ms: int,
        status: VersionStatus = "ok",
    ) -> Version:
        """Append the session's next version (latest number + 1) and bump its ``updated_at``.

        One statement numbers and inserts (the trigger of m003 bumps the session), so concurrent
        calls (tasks or processes) get distinct consecutive numbers. :class:`SessionGone` if
        there is no such session.
        """
        now = self._clock()
        try:
            rows = await self._fetchall(
                """
                INSERT INTO versions (session_id, number, request, code, note, model,
                                      prompt_tokens, completion_tokens, latency_ms, status,
                                      created_at)
                SELECT ?, COALESCE(MAX(number), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?
                FROM versions WHERE session_id = ?
                RETURNING id, number
                """,
                (session_id, request, code, note, model, prompt_tokens, completion_tokens,
                 latency_ms, status, now, session_id),
            )  # fmt: skip
        except sqlite3.IntegrityError as err:
            if "FOREIGN KEY" in str(err):
                raise SessionGone(session_id) from None
            raise
        version_id, number = rows[0]["id"], rows[0]["number"]
        assert version_id is not None
        return Version(
            id=version_id,
            session_id=session_id,
            number=number,
            request=request,
            code=code,
            note=note,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            status=status,
            created_at=now,
        )

    async def get_version(self, session_id: int, number: int | None = None) -> Version | None:
        """Version ``number`` of a session, or its latest when ``number`` is None."""
        if number is None:
            sql = _VERSION_SELECT + "WHERE session_id = ? ORDER BY number DESC LIMIT 1"
            params: tuple[int, ...] = (session_id,)
        else:
            sql = _VERSION_SELECT + "WHERE session_id = ? AND number = ?"
            params = (session_id, number)
        rows = await self._fetchall(sql, params)
        return _version(rows[0]) if rows else None

    async def list_versions(self, session_id: int) -> list[Version]:
        """All versions of a session, oldest (number 1) first."""
        rows = await self._fetchall(
            _VERSION_SELECT + "WHERE session_id = ? ORDER BY number", (session_id,)
        )
        return [_version(row) for row in rows]

    # -- runs -------------------------------------------------------------------------------

    async def add_run(
        self,
        version_id: int,
        *,
        kind: RunKind,
        status: RunStatus,
        exit_code: int | None,
        stdout: str,
        stderr: str,
        duration_ms: int,
        peak_memory_kb: int | None,
        limit_hit: RunLimit | None,
        compile_output: str,
        tests: str = "",
        stdin: str = "",
        args: Sequence[str] = (),
        artifacts: Sequence[tuple[str, bytes]] = (),
    ) -> Run:
        """Record a run of a version, with the files it produced as ``(name, data)`` pairs.
        :class:`VersionNotFound` if there is no such version.

        The run and its artifacts are one transaction: a value outside the schema's sets
        (``kind``, ``status``, ``limit_hit``) or two artifacts of one name raise
        ``sqlite3.IntegrityError`` and write nothing. The session's ``updated_at`` is left as
        it is: running is not editing.
        """
        produced = [(name, bytes(data)) for name, data in artifacts]
        now = self._clock()
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall("SELECT 1 FROM versions WHERE id = ?", (version_id,))
            )
            if not rows:
                raise VersionNotFound(version_id)
            cursor = await conn.execute(
                """
                INSERT INTO runs (version_id, kind, status, exit_code, stdout, stderr,
                                  duration_ms, peak_memory_kb, limit_hit, compile_output,
                                  tests, created_at, stdin, args)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (version_id, kind, status, exit_code, stdout, stderr, duration_ms,
                 peak_memory_kb, limit_hit, compile_output, tests, now, stdin,
                 json.dumps(list(args))),
            )  # fmt: skip
            run_id = cursor.lastrowid
            await cursor.close()
            if produced:
                await conn.executemany(
                    "INSERT INTO artifacts (run_id, name, size, data) VALUES (?, ?, ?, ?)",
                    [(run_id, name, len(data), data) for name, data in produced],
                )
        assert run_id is not None
        return Run(
            id=run_id,
            version_id=version_id,
            kind=kind,
            status=status,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_ms=duration_ms,
            peak_memory_kb=peak_memory_kb,
            limit_hit=limit_hit,
            compile_output=compile_output,
            tests=tests,
            created_at=now,
            stdin=stdin,
            args=tuple(args),
            artifacts=tuple(sorted(name for name, _ in produced)),
        )

    async def latest_run(self, version_id: int) -> Run | None:
        """The version's most recent run, if any (with its artifacts' names, not their bytes)."""
        rows = await self._fetchall(
            _RUN_SELECT + "WHERE version_id = ? ORDER BY id DESC LIMIT 1", (version_id,)
        )
        return _run(rows[0]) if rows else None

    async def list_artifacts(self, run_id: int) -> list[RunArtifact]:
        """The files a run produced, by name ([] for a run without any, or no such run)."""
        rows = await self._fetchall(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? ORDER BY name",
            (run_id,),
        )
        return [_artifact(row) for row in rows]

    # -- files ------------------------------------------------------------------------------

    async def add_file(self, session_id: int, name: str, data: bytes) -> SessionFile:
        """Attach ``data`` to the session as ``name`` and bump the session's ``updated_at``.

        A file of that name already there is replaced: it keeps its id and counts as attached
        now (the end of :meth:`list_files`). One upsert statement, so of two attaching one name
        at once the later wins and no duplicate is left. :class:`SessionGone` if there is no
        such session.
        """
        data = bytes(data)
        now = self._clock()
        try:
            rows = await self._fetchall(
                """
                INSERT INTO files (session_id, name, size, data, created_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (session_id, name) DO UPDATE
                SET size = excluded.size, data = excluded.data, created_at = excluded.created_at
                RETURNING id
                """,
                (session_id, name, len(data), data, now),
            )
        except sqlite3.IntegrityError as err:
            if "FOREIGN KEY" in str(err):
                raise SessionGone(session_id) from None
            raise
        return SessionFile(
            id=rows[0]["id"], session_id=session_id, name=name, size=len(data), data=data,
            created_at=now,
        )  # fmt: skip

    async def list_files(self, session_id: int) -> list[SessionFile]:
        """The session's files in the order they were attached (a replaced one as of then)."""
        rows = await self._fetchall(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE session_id = ? ORDER BY created_at, id",
            (session_id,),
        )
        return [_file(row) for row in rows]

    async def delete_file(self, session_id: int, name: str) -> bool:
        """Remove the session's file ``name``; False if it has none of that name."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM files WHERE session_id = ? AND name = ?", (session_id, name)
            )
            deleted = cursor.rowcount
            await cursor.close()
        return deleted > 0

    # -- failures ---------------------------------------------------------------------------

    async def add_failure(self, session_id: int, *, request: str, message: str) -> Failure:
        """Keep the request of a failed turn for a later retry, also after a restart.

        :class:`SessionGone` if there is no such session (e.g. deleted while the turn ran).
        """
        now = self._clock()
        try:
            rows = await self._fetchall(
                "INSERT INTO failures (session_id, request, message, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id",
                (session_id, request, message, now),
            )
        except sqlite3.IntegrityError as err:
            if "FOREIGN KEY" in str(err):
                raise SessionGone(session_id) from None
            raise
        return Failure(
            id=rows[0]["id"], session_id=session_id, request=request, message=message,
            created_at=now,
        )  # fmt: skip

    async def take_failure(self, session_id: int, failure_id: int | None = None) -> Failure | None:
        """Remove and return failure ``failure_id`` of the session (its latest when None).

        None when it is not there: already taken by another retry (a double click, a second
        process), cleared, or never recorded. One ``DELETE … RETURNING`` statement, so of two
        concurrent takers exactly one gets the row and a failure is retried at most once.
        """
        if failure_id is None:
            where = "id = (SELECT MAX(id) FROM failures WHERE session_id = ?)"
            params: tuple[int, ...] = (session_id,)
        else:
            where = "id = ? AND session_id = ?"
            params = (failure_id, session_id)
        rows = await self._fetchall(
            f"DELETE FROM failures WHERE {where} RETURNING {_FAILURE_COLUMNS}", params
        )
        return _failure(rows[0]) if rows else None

    async def latest_failure(self, session_id: int) -> Failure | None:
        """The session's most recent failure still waiting for a retry, if any (nothing taken)."""
        rows = await self._fetchall(
            f"SELECT {_FAILURE_COLUMNS} FROM failures WHERE session_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (session_id,),
        )
        return _failure(rows[0]) if rows else None

    async def clear_failures(self, session_id: int) -> None:
        """Forget every failure of the session (a new version makes them stale)."""
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM failures WHERE session_id = ?", (session_id,))

    # -- plumbing ---------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the lock and a write transaction; commit on success, roll back on any error.

        BEGIN is inside the ``try``: aiosqlite queues a call before awaiting it, so even when
        the task is cancelled mid-BEGIN the ROLLBACK queued after it still runs.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.commit()
            except BaseException:
                await self._conn.rollback()
                raise
