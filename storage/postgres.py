"""The PostgreSQL store: :class:`~storage.protocol.Store` on a server, through an asyncpg pool.

Several replicas share one database, and PostgreSQL runs their writers side by side (READ
COMMITTED), so where SQLite's one writer made a read-then-write atomic, this store takes the
lock that makes it so: the session row (``FOR NO KEY UPDATE``) before numbering a version, an
advisory lock on the key before counting a rate window, ``FOR UPDATE SKIP LOCKED`` when
claiming a job. Everything else is one statement, atomic by itself. All values are bound
parameters (``$1``…); JSON goes in as text cast to ``jsonb`` and comes back as text, and
:mod:`storage.rows` turns rows into the same records SQLite's store returns.

Unlike SQLite's ``secure_delete``, PostgreSQL leaves deleted rows in their pages until VACUUM
(autovacuum, by default) reclaims them; protect the server's disk accordingly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from . import rows
from .errors import (
    ConstraintViolation,
    SessionExists,
    SessionGone,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
)
from .postgres_migrations import migrate
from .protocol import is_postgres_url
from .records import (
    ApiToken,
    Failure,
    Job,
    JobState,
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
from .rows import FINISHED_JOB_TTL, FINISHED_STATES, PRUNE_EVERY, TOKEN_TOUCH_EVERY, Clock

__all__ = ["PostgresStore"]

# The first int4 of the two-key advisory lock on a rate window's key (the second is the key's
# hashtext): a key space of its own, apart from the migrations' one-bigint lock.
RATE_LOCK = 0x72617465  # "rate"

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
       limit_hit, compile_output, tests, created_at, stdin, args::text AS args,
       (SELECT COALESCE(json_agg(a.name), '[]')::text FROM artifacts AS a
        WHERE a.run_id = runs.id) AS artifacts,
       (SELECT v.number FROM versions AS v WHERE v.id = runs.version_id) AS version_number
FROM runs
"""

_FAILURE_COLUMNS = "id, session_id, request, message, created_at"
_FILE_COLUMNS = "id, session_id, name, size, data, created_at"
_ARTIFACT_COLUMNS = "id, run_id, name, size, data"
_JOB_COLUMNS = (
    "id, delivery, lane, kind, payload::text AS payload, state, owner, attempts,"
    " progress::text AS progress, created_at"
)
_PRUNE_JOBS = "DELETE FROM jobs WHERE state IN ('done', 'failed') AND finished_at < $1"
_TOKEN_COLUMNS = "id, owner, label, created_at, expires_at, revoked_at, last_used_at"

_LIST_FILTERS = ("owner", "platform", "workspace")  # constant names, never values
_HAS_VERSION = "EXISTS (SELECT 1 FROM versions AS v WHERE v.session_id = s.id)"

# See SqliteStore's _CLAIMABLE: the same rule ($1 the claimer, $4 the stale cutoff; the
# ``/* kinds */`` comment is replaced by _KINDS, filtering the candidate by the prefixes in $5).
# SKIP LOCKED passes over a job another replica is claiming this instant; the lock rechecks
# the job's own state and heartbeat (READ COMMITTED re-reads a row it had to wait for), so a
# job just claimed is not claimed twice.
_CLAIMABLE = """
SELECT j.id FROM jobs AS j
WHERE j.state IN ('queued', 'running')
  AND ((j.state = 'queued'
       AND NOT EXISTS (SELECT 1 FROM jobs AS e
                       WHERE e.lane = j.lane AND e.state = 'queued' AND e.id < j.id)
       AND NOT EXISTS (SELECT 1 FROM jobs AS r
                       WHERE r.lane = j.lane AND r.state = 'running'
                         AND (r.owner <> $1 OR r.heartbeat_at < $4)))
   OR (j.state = 'running' AND j.heartbeat_at < $4
       AND NOT EXISTS (SELECT 1 FROM jobs AS e
                       WHERE e.lane = j.lane AND e.state IN ('queued', 'running')
                         AND e.id < j.id)))
  /* kinds */
ORDER BY j.id LIMIT 1
FOR UPDATE SKIP LOCKED
"""
_KINDS = (
    "AND EXISTS (SELECT 1 FROM unnest($5::text[]) AS k (prefix)"
    " WHERE left(j.kind, length(k.prefix)) = k.prefix)"
)


def _list_query(
    *,
    owner: str | None,
    platform: str | None,
    workspace: str | None,
    limit: int,
    search: str | None = None,
    with_versions: bool = False,
) -> tuple[str, list[Any]]:
    """SQL and parameters for :meth:`PostgresStore.list_sessions` (apart, so tests EXPLAIN it).

    Search is ``ILIKE`` on the title and on each version's request, note and code (m006's
    trigram indexes serve the version columns, when pg_trgm could be installed). Across
    everyone's sessions the version part is an ``IN`` list, which PostgreSQL computes once
    and hashes, rather than a correlated ``EXISTS``, which the ``OR`` would make it run per
    session. Within one person's sessions (every search the bot makes) it is that ``EXISTS``:
    a few sessions' versions through their index, where the ``IN`` list of a common word
    outgrows ``work_mem`` and is scanned again per session (at 5M versions: 4 s, 5 ms so).
    """
    given = dict(zip(_LIST_FILTERS, (owner, platform, workspace), strict=True))
    params: list[Any] = []
    where = []
    for name, value in given.items():
        if value is not None:
            params.append(value)
            where.append(f"s.{name} = ${len(params)}")
    if with_versions:
        where.append(_HAS_VERSION)
    if search:
        params.append(rows.like_pattern(search))
        like = f"ILIKE ${len(params)} ESCAPE '\\'"
        columns = f"v.request {like} OR v.note {like} OR v.code {like}"
        where.append(
            f"(s.title {like} OR s.id IN (SELECT v.session_id FROM versions AS v WHERE {columns}))"
            if owner is None
            else f"(s.title {like} OR EXISTS (SELECT 1 FROM versions AS v"
            f" WHERE v.session_id = s.id AND ({columns})))"
        )
    sql = _SESSION_SELECT
    if where:
        sql += "WHERE " + " AND ".join(where) + "\n"
    params.append(limit)
    sql += f"ORDER BY s.updated_at DESC, s.id DESC\nLIMIT ${len(params)}"
    return sql, params


def _count(status: str) -> int:
    """The row count of a command status such as ``"DELETE 3"``."""
    return int(status.rsplit(" ", 1)[-1])


@contextmanager
def _refusals(gone: Callable[[], StoreError] | None = None) -> Iterator[None]:
    """Turn what the schema refused into the store's errors: ``gone()`` for a missing parent
    row (a foreign key), :class:`ConstraintViolation` for any other constraint."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError as err:
        if gone is None:
            raise ConstraintViolation(str(err)) from err
        raise gone() from None
    except asyncpg.IntegrityConstraintViolationError as err:
        raise ConstraintViolation(str(err)) from err


def _redacted(dsn: str) -> str:
    """The URL without its password, for ``repr`` and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class _ClosedPool:
    """Stands in for the pool once the store is closed."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise StoreError(f"The store {self._name!r} is closed.")


class PostgresStore:
    """The sessions database on a PostgreSQL server. Build it with :meth:`open`; close it.

    ``async with await PostgresStore.open(url) as store:`` closes it on exit.
    """

    def __init__(self, pool: Any, *, name: str, clock: Clock = time.time) -> None:
        """Wrap an open asyncpg pool on a migrated database; prefer :meth:`open`."""
        self._pool = pool
        self._name = name
        self._clock = clock
        self._calls = {"deliveries": 0, "rate_hits": 0, "jobs": 0}  # toward lazy pruning
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str | Path,
        /,
        *,
        clock: Clock = time.time,
        min_size: int = 1,
        max_size: int = 10,
    ) -> PostgresStore:
        """Connect a pool of ``min_size`` to ``max_size`` connections and migrate the database.

        ``url`` is a ``postgresql://`` URL (a :class:`~pathlib.Path` is accepted only for the
        protocol's sake and must hold one). :class:`StoreUnavailable` when the server cannot
        be reached or refuses the login or the database; the database must exist.
        """
        dsn = str(url)
        if not is_postgres_url(dsn) or "://" not in dsn:
            raise ValueError(f"not a postgresql:// URL: {_redacted(dsn)!r}")
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            raise StoreUnavailable(f"Cannot connect to {_redacted(dsn)}: {err}") from err
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, name=_redacted(dsn), clock=clock)

    async def close(self) -> None:
        """Let queries in flight finish and close the pool. Safe to call twice; afterwards
        every call raises :class:`StoreError`, as SQLite's store does."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, _ClosedPool(self._name)
        await pool.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._name!r})"

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(
        self, *, key: SessionKey, owner: str, language: str, model: str, title: str
    ) -> Session:
        now = self._clock()
        session_id = await self._pool.fetchval(
            """
            INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,
                                  title, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
            ON CONFLICT (platform, workspace, channel, thread) DO NOTHING
            RETURNING id
            """,
            key.platform, key.workspace, key.channel, key.thread, owner, language, model,
            title, now,
        )  # fmt: skip
        if session_id is None:
            raise SessionExists(key)
        return Session(
            id=session_id, key=key, owner=owner, language=language, model=model, title=title,
            created_at=now, updated_at=now, version_count=0,
        )  # fmt: skip

    async def get_session(self, session_id: int) -> Session | None:
        row = await self._pool.fetchrow(_SESSION_SELECT + "WHERE s.id = $1", session_id)
        return rows.session(row) if row else None

    async def find_session(self, key: SessionKey) -> Session | None:
        row = await self._pool.fetchrow(
            _SESSION_SELECT
            + "WHERE s.platform = $1 AND s.workspace = $2 AND s.channel = $3 AND s.thread = $4",
            key.platform, key.workspace, key.channel, key.thread,
        )  # fmt: skip
        return rows.session(row) if row else None

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
        """See :meth:`Store.list_sessions`. Case folds as the database's locale does."""
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
        return [rows.session(row) for row in await self._pool.fetch(sql, *params)]

    async def prune_empty(self, older_than: float) -> int:
        status = await self._pool.execute(
            "DELETE FROM sessions AS s WHERE s.updated_at < $1 AND NOT " + _HAS_VERSION,
            self._clock() - older_than,
        )
        return _count(status)

    async def delete_session(self, session_id: int) -> bool:
        status = await self._pool.execute("DELETE FROM sessions WHERE id = $1", session_id)
        return _count(status) > 0

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
        """Locks the session row, then numbers and inserts in a second statement: under READ
        COMMITTED that statement's snapshot includes every version committed before the lock
        was granted, so concurrent calls (any replica) get distinct consecutive numbers."""
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            async with self._pool.acquire() as conn, conn.transaction():
                locked = await conn.fetchval(
                    "SELECT id FROM sessions WHERE id = $1 FOR NO KEY UPDATE", session_id
                )
                if locked is None:
                    raise SessionGone(session_id)
                row = await conn.fetchrow(
                    """
                    INSERT INTO versions (session_id, number, request, code, note, model,
                                          prompt_tokens, completion_tokens, latency_ms, status,
                                          created_at)
                    SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10
                    FROM versions WHERE session_id = $1
                    RETURNING id, number
                    """,
                    session_id, request, code, note, model, prompt_tokens, completion_tokens,
                    latency_ms, status, now,
                )  # fmt: skip
        return Version(
            id=row["id"], session_id=session_id, number=row["number"], request=request,
            code=code, note=note, model=model, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_ms=latency_ms, status=status,
            created_at=now,
        )  # fmt: skip

    async def get_version(self, session_id: int, number: int | None = None) -> Version | None:
        if number is None:
            row = await self._pool.fetchrow(
                _VERSION_SELECT + "WHERE session_id = $1 ORDER BY number DESC LIMIT 1",
                session_id,
            )
        else:
            row = await self._pool.fetchrow(
                _VERSION_SELECT + "WHERE session_id = $1 AND number = $2", session_id, number
            )
        return rows.version(row) if row else None

    async def list_versions(self, session_id: int) -> list[Version]:
        found = await self._pool.fetch(
            _VERSION_SELECT + "WHERE session_id = $1 ORDER BY number", session_id
        )
        return [rows.version(row) for row in found]

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
        produced = [(name, bytes(data)) for name, data in artifacts]
        now = self._clock()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                inserted = await conn.fetchrow(
                    """
                    INSERT INTO runs (version_id, kind, status, exit_code, stdout, stderr,
                                      duration_ms, peak_memory_kb, limit_hit, compile_output,
                                      tests, created_at, stdin, args)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)
                    RETURNING id, (SELECT number FROM versions WHERE id = $1) AS number
                    """,
                    version_id, kind, status, exit_code, stdout, stderr, duration_ms,
                    peak_memory_kb, limit_hit, compile_output, tests, now, stdin,
                    json.dumps(list(args)),
                )  # fmt: skip
                run_id = inserted["id"]
                await conn.executemany(
                    "INSERT INTO artifacts (run_id, name, size, data) VALUES ($1, $2, $3, $4)",
                    [(run_id, name, len(data), data) for name, data in produced],
                )
        except asyncpg.ForeignKeyViolationError:
            raise VersionNotFound(version_id) from None
        except asyncpg.IntegrityConstraintViolationError as err:
            raise ConstraintViolation(str(err)) from err
        return Run(
            id=run_id, version_id=version_id, kind=kind, status=status, exit_code=exit_code,
            stdout=stdout, stderr=stderr, duration_ms=duration_ms,
            peak_memory_kb=peak_memory_kb, limit_hit=limit_hit, compile_output=compile_output,
            tests=tests, created_at=now, stdin=stdin, args=tuple(args),
            artifacts=tuple(sorted(name for name, _ in produced)),
            version_number=inserted["number"],
        )  # fmt: skip

    async def latest_run(self, version_id: int) -> Run | None:
        row = await self._pool.fetchrow(
            _RUN_SELECT + "WHERE version_id = $1 ORDER BY id DESC LIMIT 1", version_id
        )
        return rows.run(row) if row else None

    async def list_runs(self, session_id: int, *, limit: int = 50) -> list[Run]:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        found = await self._pool.fetch(
            _RUN_SELECT + "WHERE version_id IN (SELECT id FROM versions WHERE session_id = $1)"
            " ORDER BY id DESC LIMIT $2",
            session_id, limit,
        )  # fmt: skip
        return [rows.run(row) for row in found]

    async def get_run(self, run_id: int) -> Run | None:
        row = await self._pool.fetchrow(_RUN_SELECT + "WHERE id = $1", run_id)
        return rows.run(row) if row else None

    async def list_artifacts(self, run_id: int) -> list[RunArtifact]:
        # COLLATE "C": code point order, as SQLite's BINARY and rows.run() sort names.
        found = await self._pool.fetch(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1"
            ' ORDER BY name COLLATE "C"',
            run_id,
        )
        return [rows.artifact(row) for row in found]

    async def get_artifact(self, run_id: int, name: str) -> RunArtifact | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 AND name = $2",
            run_id, name,
        )  # fmt: skip
        return rows.artifact(row) if row else None

    # -- files ------------------------------------------------------------------------------

    async def add_file(self, session_id: int, name: str, data: bytes) -> SessionFile:
        data = bytes(data)
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            file_id = await self._pool.fetchval(
                """
                INSERT INTO files (session_id, name, size, data, created_at)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (session_id, name) DO UPDATE
                SET size = EXCLUDED.size, data = EXCLUDED.data, created_at = EXCLUDED.created_at
                RETURNING id
                """,
                session_id, name, len(data), data, now,
            )  # fmt: skip
        return SessionFile(
            id=file_id, session_id=session_id, name=name, size=len(data), data=data,
            created_at=now,
        )  # fmt: skip

    async def list_files(self, session_id: int) -> list[SessionFile]:
        found = await self._pool.fetch(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE session_id = $1 ORDER BY created_at, id",
            session_id,
        )
        return [rows.file(row) for row in found]

    async def delete_file(self, session_id: int, name: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM files WHERE session_id = $1 AND name = $2", session_id, name
        )
        return _count(status) > 0

    # -- failures ---------------------------------------------------------------------------

    async def add_failure(self, session_id: int, *, request: str, message: str) -> Failure:
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            failure_id = await self._pool.fetchval(
                "INSERT INTO failures (session_id, request, message, created_at)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                session_id, request, message, now,
            )  # fmt: skip
        return Failure(
            id=failure_id, session_id=session_id, request=request, message=message,
            created_at=now,
        )  # fmt: skip

    async def take_failure(self, session_id: int, failure_id: int | None = None) -> Failure | None:
        """One ``DELETE … RETURNING``: a second taker waits for the first's row lock, then
        finds the row gone and returns nothing."""
        if failure_id is None:
            where = "id = (SELECT MAX(id) FROM failures WHERE session_id = $1)"
            params: tuple[int, ...] = (session_id,)
        else:
            where = "id = $1 AND session_id = $2"
            params = (failure_id, session_id)
        row = await self._pool.fetchrow(
            f"DELETE FROM failures WHERE {where} RETURNING {_FAILURE_COLUMNS}", *params
        )
        return rows.failure(row) if row else None

    async def latest_failure(self, session_id: int) -> Failure | None:
        row = await self._pool.fetchrow(
            f"SELECT {_FAILURE_COLUMNS} FROM failures WHERE session_id = $1"
            " ORDER BY id DESC LIMIT 1",
            session_id,
        )
        return rows.failure(row) if row else None

    async def clear_failures(self, session_id: int) -> None:
        await self._pool.execute("DELETE FROM failures WHERE session_id = $1", session_id)

    # -- deliveries and rate windows ----------------------------------------------------------

    async def claim_delivery(self, key: str, *, ttl: float = 86400) -> bool:
        """One upsert; a concurrent claim of the same new key waits on the unique index for
        the first to commit, then finds it live."""
        now = self._clock()
        if self._due("deliveries"):
            await self._pool.execute("DELETE FROM deliveries WHERE expires_at <= $1", now)
        claimed = await self._pool.fetchval(
            """
            INSERT INTO deliveries (key, expires_at) VALUES ($1, $2)
            ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
            WHERE deliveries.expires_at <= $3
            RETURNING key
            """,
            key, now + ttl, now,
        )  # fmt: skip
        return claimed is not None

    async def rate_hit(
        self, key: str, *, window: float, limit: int, count: bool = True
    ) -> float | None:
        """A transaction holding ``pg_advisory_xact_lock`` on the key, so that replicas
        counting one key take turns (two keys never wait for each other)."""
        rows.check_window(window, limit)
        now = self._clock()
        prune = self._due("rate_hits")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", RATE_LOCK, key)
            if prune:
                await conn.execute("DELETE FROM rate_hits WHERE expires_at <= $1", now)
            await conn.execute(
                "DELETE FROM rate_hits WHERE key = $1 AND expires_at <= $2", key, now
            )
            full = await conn.fetchval(
                "SELECT at FROM rate_hits WHERE key = $1 AND at > $2"
                " ORDER BY at DESC LIMIT 1 OFFSET $3",
                key, now - window, limit - 1,
            )  # fmt: skip
            if full is not None:
                return float(full) + window - now
            if count:
                await conn.execute(
                    "INSERT INTO rate_hits (key, at, expires_at) VALUES ($1, $2, $3)",
                    key, now, now + window,
                )  # fmt: skip
        return None

    # -- jobs -------------------------------------------------------------------------------

    async def add_job(
        self, *, delivery: str, lane: str, kind: str, payload: Mapping[str, Any]
    ) -> Job | None:
        document = rows.dump_object(payload, "payload")
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO jobs (delivery, lane, kind, payload, state, attempts, created_at)
            VALUES ($1, $2, $3, $4::jsonb, 'queued', 0, $5)
            ON CONFLICT (delivery) DO NOTHING
            RETURNING {_JOB_COLUMNS}
            """,
            delivery, lane, kind, document, self._clock(),
        )  # fmt: skip
        return rows.job(row) if row else None

    async def claim_job(
        self, owner: str, *, stale_after: float, kinds: Sequence[str] | None = None
    ) -> Job | None:
        if kinds is not None and not kinds:
            return None
        now = self._clock()
        params: list[Any] = [owner, now, now, now - stale_after]
        if kinds is not None:
            params.append(list(kinds))
        claimable = _CLAIMABLE.replace("/* kinds */", "" if kinds is None else _KINDS)
        row = await self._pool.fetchrow(
            f"""
            UPDATE jobs SET state = 'running', owner = $1, attempts = attempts + 1,
                            claimed_at = $2, heartbeat_at = $3
            WHERE id = ({claimable})
            RETURNING {_JOB_COLUMNS}
            """,
            *params,
        )
        return rows.job(row) if row else None

    async def heartbeat(self, owner: str) -> None:
        await self._pool.execute(
            "UPDATE jobs SET heartbeat_at = $1 WHERE owner = $2 AND state = 'running'",
            self._clock(), owner,
        )  # fmt: skip

    async def job_progress(self, job_id: int, progress: Mapping[str, Any]) -> None:
        document = rows.dump_object(progress, "progress")
        await self._pool.execute(
            "UPDATE jobs SET progress = $1::jsonb WHERE id = $2", document, job_id
        )

    async def finish_job(
        self, job_id: int, *, state: Literal["done", "failed"] = "done", owner: str | None = None
    ) -> bool:
        if state not in FINISHED_STATES:
            raise ValueError(f"a job finishes 'done' or 'failed', not {state!r}")
        now = self._clock()
        status = await self._pool.execute(
            "UPDATE jobs SET state = $1, finished_at = $2 WHERE id = $3"
            " AND ($4::text IS NULL OR owner = $4)",
            state, now, job_id, owner,
        )  # fmt: skip
        if self._due("jobs"):
            await self._pool.execute(_PRUNE_JOBS, now - FINISHED_JOB_TTL)
        return _count(status) > 0

    async def count_jobs(self, state: JobState) -> int:
        return int(await self._pool.fetchval("SELECT COUNT(*) FROM jobs WHERE state = $1", state))

    async def get_job(self, job_id: int) -> Job | None:
        row = await self._pool.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return rows.job(row) if row else None

    async def prune_jobs(self, older_than: float = FINISHED_JOB_TTL) -> int:
        return _count(await self._pool.execute(_PRUNE_JOBS, self._clock() - older_than))

    # -- API tokens and shared secrets ---------------------------------------------------------

    async def add_token(
        self, user: str, token_hash: str, *, label: str = "", expires_at: float | None = None
    ) -> ApiToken:
        now = self._clock()
        with _refusals():
            token_id = await self._pool.fetchval(
                "INSERT INTO api_tokens (owner, label, hash, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                user, label, token_hash, now, expires_at,
            )  # fmt: skip
        return ApiToken(
            id=token_id, user=user, label=label, created_at=now, expires_at=expires_at,
            revoked_at=None, last_used_at=None,
        )  # fmt: skip

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """A read by the unique index on ``hash``; a guarded write only when the recorded use
        is a minute old (of two requests at once, one writes)."""
        now = self._clock()
        row = await self._pool.fetchrow(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > $2)",
            token_hash, now,
        )  # fmt: skip
        if row is None:
            return None
        token = rows.token(row)
        if token.last_used_at is not None and token.last_used_at > now - TOKEN_TOUCH_EVERY:
            return token
        status = await self._pool.execute(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
            " AND (last_used_at IS NULL OR last_used_at <= $3)",
            now, token.id, now - TOKEN_TOUCH_EVERY,
        )  # fmt: skip
        return replace(token, last_used_at=now) if _count(status) else token

    async def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        if user is None:
            found = await self._pool.fetch(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY id DESC"
            )
        else:
            found = await self._pool.fetch(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE owner = $1 ORDER BY id DESC", user
            )
        return [rows.token(row) for row in found]

    async def revoke_token(self, token_id: int) -> bool:
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
            self._clock(), token_id,
        )  # fmt: skip
        return _count(status) > 0

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """Read; else insert-if-absent, then read again in a statement of its own: under READ
        COMMITTED an insert racing another waits for it on the primary key and does nothing,
        and the later statement's snapshot sees the row that won."""
        found = await self._pool.fetchval("SELECT value FROM secrets WHERE name = $1", name)
        if found is not None:
            return bytes(found)
        await self._pool.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name, bytes(make()),
        )  # fmt: skip
        return bytes(await self._pool.fetchval("SELECT value FROM secrets WHERE name = $1", name))

    # -- plumbing ---------------------------------------------------------------------------

    def _due(self, table: str) -> bool:
        """Whether this call should also prune ``table`` (every PRUNE_EVERY-th call)."""
        self._calls[table] += 1
        return self._calls[table] % PRUNE_EVERY == 0
