"""The SQLite store: :class:`~storage.protocol.Store` on one file, through aiosqlite.

Reads run on a pool of reader connections and writes on the one writer
(:mod:`storage.sqlite_pool`); every write is one function run whole on the writer's thread,
inside a ``BEGIN IMMEDIATE`` transaction (shared with the writes that queued up meanwhile,
each in a savepoint of its own), so tasks sharing a store never see each other's half-done
writes, and processes sharing the file (WAL mode, ``busy_timeout``) serialize their writers.
All values are bound parameters.

Deleted content (``secure_delete``) is overwritten with zeros in the database file rather than
left in free pages. In WAL mode the frames that once wrote it stay in the ``-wal`` file until
writes after a checkpoint overwrite them, or the file is emptied (the last connection closing
deletes it; ``PRAGMA wal_checkpoint(TRUNCATE)`` empties it at once). The search index
(m006_search) drops a deleted version's trigrams only when FTS5 merges its segments.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import rows
from .errors import (
    ConstraintViolation,
    SessionExists,
    SessionGone,
    StoreError,
    VersionNotFound,
)
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
from .sqlite_pool import READERS, SqlitePool

__all__ = ["SqliteStore"]

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
           AS artifacts,
       (SELECT v.number FROM versions AS v WHERE v.id = runs.version_id) AS version_number
FROM runs
"""

_FAILURE_COLUMNS = "id, session_id, request, message, created_at"
_FILE_COLUMNS = "id, session_id, name, size, data, created_at"
_ARTIFACT_COLUMNS = "id, run_id, name, size, data"
_PRUNE_JOBS = "DELETE FROM jobs WHERE state IN ('done', 'failed') AND finished_at < ?"
_JOB_COLUMNS = "id, delivery, lane, kind, payload, state, owner, attempts, progress, created_at"
_TOKEN_COLUMNS = "id, owner, label, created_at, expires_at, revoked_at, last_used_at"

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

# The oldest claimable job (see Store.claim_job): its lane's first queued job while every job
# running in its lane is the claimer's own and alive (one replica runs a lane's turns, which
# then keep their order in its own line and can say "waiting for 1 earlier request"), or its
# lane's first unfinished job when that is running with a stale heartbeat (its owner died).
# Named parameters: owner, cutoff. ``state IN ('queued', 'running')`` is spelled as m008's
# partial index is, so that SQLite uses it (it holds only unfinished jobs).
_CLAIMABLE = """
SELECT j.id FROM jobs AS j
WHERE j.state IN ('queued', 'running')
  AND ((j.state = 'queued'
       AND NOT EXISTS (SELECT 1 FROM jobs AS e
                       WHERE e.lane = j.lane AND e.state = 'queued' AND e.id < j.id)
       AND NOT EXISTS (SELECT 1 FROM jobs AS r
                       WHERE r.lane = j.lane AND r.state = 'running'
                         AND (r.owner <> :owner OR r.heartbeat_at < :cutoff)))
   OR (j.state = 'running' AND j.heartbeat_at < :cutoff
       AND NOT EXISTS (SELECT 1 FROM jobs AS e
                       WHERE e.lane = j.lane AND e.state IN ('queued', 'running')
                         AND e.id < j.id)))
  /* kinds */
ORDER BY j.id LIMIT 1
"""


def _kinds_filter(kinds: Sequence[str] | None) -> tuple[str, dict[str, str]]:
    """The ``/* kinds */`` line of :data:`_CLAIMABLE` and its named parameters: the candidate's
    kind starts with one of ``kinds`` (``substr``, not ``LIKE``, which folds ASCII case here
    and not in PostgreSQL). Only the candidate is filtered; the lane rule reads every job."""
    if kinds is None:
        return "", {}
    params = {f"kind{n}": prefix for n, prefix in enumerate(kinds)}
    tests = [f"substr(j.kind, 1, length(:{name})) = :{name}" for name in params]
    return "AND (" + " OR ".join(tests) + ")", params


def _list_query(
    *,
    owner: str | None,
    platform: str | None,
    workspace: str | None,
    limit: int,
    search: str | None = None,
    with_versions: bool = False,
) -> tuple[str, list[Any]]:
    """SQL and parameters for :meth:`SqliteStore.list_sessions` (apart, so tests EXPLAIN it)."""
    given = dict(zip(_LIST_FILTERS, (owner, platform, workspace), strict=True))
    where = [f"s.{name} = ?" for name, value in given.items() if value is not None]
    params: list[Any] = [value for value in given.values() if value is not None]
    if with_versions:
        where.append(_HAS_VERSION)
    if search and len(search) >= 3 and owner is None:
        where.append(_MATCHES)
        params += [rows.like_pattern(search), '"' + search.replace('"', '""') + '"']
    elif search:
        # one person's sessions (every search the bot makes): each is looked through, which
        # stays fast however common the word; the trigram index would first list every
        # matching version in the database (a common word at 5M versions: 364 ms, 4.5 ms so)
        where.append(_MATCHES_SHORT)
        params += [rows.like_pattern(search)] * 4
    sql = _SESSION_SELECT
    if where:
        sql += "WHERE " + " AND ".join(where) + "\n"
    sql += "ORDER BY s.updated_at DESC, s.id DESC\nLIMIT ?"
    params.append(limit)
    return sql, params


@contextmanager
def _refusals(gone: Callable[[], StoreError] | None = None) -> Iterator[None]:
    """Turn what the schema refused into the store's errors: ``gone()`` for a missing parent
    row (a foreign key), :class:`ConstraintViolation` for anything else."""
    try:
        yield
    except sqlite3.IntegrityError as err:
        if gone is not None and "FOREIGN KEY" in str(err):
            raise gone() from None
        raise ConstraintViolation(str(err)) from err


class SqliteStore:
    """The sessions database in a SQLite file. Build it with :meth:`open`; close it when done.

    ``async with await SqliteStore.open(path) as store:`` closes it on exit.
    """

    def __init__(self, pool: SqlitePool, *, clock: Clock = time.time) -> None:
        """Wrap open, migrated connections; prefer :meth:`open`."""
        self._pool = pool
        self._clock = clock
        self._calls = {"deliveries": 0, "rate_hits": 0, "jobs": 0}  # toward lazy pruning

    @classmethod
    async def open(
        cls, path: str | Path, /, *, clock: Clock = time.time, readers: int = READERS
    ) -> SqliteStore:
        """Open (creating it and its parent directories if needed) and migrate a database.

        ``":memory:"`` gives a private in-memory database. ``clock`` supplies the unix-seconds
        timestamps stored in ``created_at``/``updated_at``; ``readers`` is the number of
        reader connections (reads beyond it wait for a free one).
        """
        return cls(await SqlitePool.open(path, readers=readers), clock=clock)

    async def close(self) -> None:
        """Finish queued work and close the connections. Safe to call twice."""
        await self._pool.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self._pool.name!r})"

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(
        self, *, key: SessionKey, owner: str, language: str, model: str, title: str
    ) -> Session:
        now = self._clock()
        found, _ = await self._pool.write(
            """
            INSERT INTO sessions (platform, workspace, channel, thread, owner, language, model,
                                  title, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (platform, workspace, channel, thread) DO NOTHING
            RETURNING id
            """,
            (key.platform, key.workspace, key.channel, key.thread, owner, language, model,
             title, now, now),
        )  # fmt: skip
        if not found:
            raise SessionExists(key)
        return Session(
            id=found[0]["id"], key=key, owner=owner, language=language, model=model,
            title=title, created_at=now, updated_at=now, version_count=0,
        )  # fmt: skip

    async def get_session(self, session_id: int) -> Session | None:
        found = await self._pool.read(_SESSION_SELECT + "WHERE s.id = ?", (session_id,))
        return rows.session(found[0]) if found else None

    async def find_session(self, key: SessionKey) -> Session | None:
        found = await self._pool.read(
            _SESSION_SELECT
            + "WHERE s.platform = ? AND s.workspace = ? AND s.channel = ? AND s.thread = ?",
            (key.platform, key.workspace, key.channel, key.thread),
        )
        return rows.session(found[0]) if found else None

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
        """See :meth:`Store.list_sessions`. Case folds ASCII only (LIKE and FTS5 trigrams)."""
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
        return [rows.session(row) for row in await self._pool.read(sql, params)]

    async def prune_empty(self, older_than: float) -> int:
        """Delete the sessions without a version that nobody touched for ``older_than``
        seconds (a failed first ask, a non-code answer: they would pile up in lists);
        returns how many. A failure recorded later touches its session, so a session whose
        request can still be retried is kept as long as its other sessions would be."""
        cutoff = self._clock() - older_than
        _, deleted = await self._pool.write(
            "DELETE FROM sessions AS s WHERE s.updated_at < ? AND NOT " + _HAS_VERSION,
            (cutoff,),
        )
        return deleted

    async def delete_session(self, session_id: int) -> bool:
        """Delete a session and (by cascade) its versions, runs, failures, files and the runs'
        artifacts; False if none."""
        _, deleted = await self._pool.write("DELETE FROM sessions WHERE id = ?", (session_id,))
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
        """One statement numbers and inserts (m003's trigger bumps the session), and SQLite
        runs one writer at a time, so concurrent calls get distinct consecutive numbers."""
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            found, _ = await self._pool.write(
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
        return Version(
            id=found[0]["id"], session_id=session_id, number=found[0]["number"],
            request=request, code=code, note=note, model=model, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_ms=latency_ms, status=status,
            created_at=now,
        )  # fmt: skip

    async def get_version(self, session_id: int, number: int | None = None) -> Version | None:
        if number is None:
            sql = _VERSION_SELECT + "WHERE session_id = ? ORDER BY number DESC LIMIT 1"
            params: tuple[int, ...] = (session_id,)
        else:
            sql = _VERSION_SELECT + "WHERE session_id = ? AND number = ?"
            params = (session_id, number)
        found = await self._pool.read(sql, params)
        return rows.version(found[0]) if found else None

    async def list_versions(self, session_id: int) -> list[Version]:
        found = await self._pool.read(
            _VERSION_SELECT + "WHERE session_id = ? ORDER BY number", (session_id,)
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
        """The run and its artifacts are one transaction; the session's ``updated_at`` is left
        as it is: running is not editing."""
        produced = [(name, bytes(data)) for name, data in artifacts]
        now = self._clock()

        def insert(db: sqlite3.Connection) -> tuple[int, int]:
            version = db.execute("SELECT number FROM versions WHERE id = ?", (version_id,))
            found = version.fetchone()
            if found is None:
                raise VersionNotFound(version_id)
            (run_id,) = db.execute(
                """
                INSERT INTO runs (version_id, kind, status, exit_code, stdout, stderr,
                                  duration_ms, peak_memory_kb, limit_hit, compile_output,
                                  tests, created_at, stdin, args)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                RETURNING id
                """,
                (version_id, kind, status, exit_code, stdout, stderr, duration_ms,
                 peak_memory_kb, limit_hit, compile_output, tests, now, stdin,
                 json.dumps(list(args))),
            ).fetchone()  # fmt: skip
            db.executemany(
                "INSERT INTO artifacts (run_id, name, size, data) VALUES (?, ?, ?, ?)",
                [(run_id, name, len(data), data) for name, data in produced],
            )
            return int(run_id), int(found["number"])

        with _refusals():
            run_id, number = await self._pool.transaction(insert)
        return Run(
            id=run_id, version_id=version_id, kind=kind, status=status, exit_code=exit_code,
            stdout=stdout, stderr=stderr, duration_ms=duration_ms,
            peak_memory_kb=peak_memory_kb, limit_hit=limit_hit, compile_output=compile_output,
            tests=tests, created_at=now, stdin=stdin, args=tuple(args),
            artifacts=tuple(sorted(name for name, _ in produced)), version_number=number,
        )  # fmt: skip

    async def latest_run(self, version_id: int) -> Run | None:
        found = await self._pool.read(
            _RUN_SELECT + "WHERE version_id = ? ORDER BY id DESC LIMIT 1", (version_id,)
        )
        return rows.run(found[0]) if found else None

    async def list_runs(self, session_id: int, *, limit: int = 50) -> list[Run]:
        """Through the versions' ``UNIQUE (session_id, number)`` index and ``runs_version``."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        found = await self._pool.read(
            _RUN_SELECT + "WHERE version_id IN (SELECT id FROM versions WHERE session_id = ?)"
            " ORDER BY id DESC LIMIT ?",
            (session_id, limit),
        )
        return [rows.run(row) for row in found]

    async def get_run(self, run_id: int) -> Run | None:
        found = await self._pool.read(_RUN_SELECT + "WHERE id = ?", (run_id,))
        return rows.run(found[0]) if found else None

    async def list_artifacts(self, run_id: int) -> list[RunArtifact]:
        found = await self._pool.read(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? ORDER BY name",
            (run_id,),
        )
        return [rows.artifact(row) for row in found]

    async def get_artifact(self, run_id: int, name: str) -> RunArtifact | None:
        found = await self._pool.read(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? AND name = ?",
            (run_id, name),
        )
        return rows.artifact(found[0]) if found else None

    # -- files ------------------------------------------------------------------------------

    async def add_file(self, session_id: int, name: str, data: bytes) -> SessionFile:
        """One upsert statement (m007's triggers bump the session), so of two attaching one
        name at once the later wins and no duplicate is left."""
        data = bytes(data)
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            found, _ = await self._pool.write(
                """
                INSERT INTO files (session_id, name, size, data, created_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (session_id, name) DO UPDATE
                SET size = excluded.size, data = excluded.data, created_at = excluded.created_at
                RETURNING id
                """,
                (session_id, name, len(data), data, now),
            )
        return SessionFile(
            id=found[0]["id"], session_id=session_id, name=name, size=len(data), data=data,
            created_at=now,
        )  # fmt: skip

    async def list_files(self, session_id: int) -> list[SessionFile]:
        found = await self._pool.read(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE session_id = ? ORDER BY created_at, id",
            (session_id,),
        )
        return [rows.file(row) for row in found]

    async def delete_file(self, session_id: int, name: str) -> bool:
        _, deleted = await self._pool.write(
            "DELETE FROM files WHERE session_id = ? AND name = ?", (session_id, name)
        )
        return deleted > 0

    # -- failures ---------------------------------------------------------------------------

    async def add_failure(self, session_id: int, *, request: str, message: str) -> Failure:
        now = self._clock()
        with _refusals(lambda: SessionGone(session_id)):
            found, _ = await self._pool.write(
                "INSERT INTO failures (session_id, request, message, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id",
                (session_id, request, message, now),
            )
        return Failure(
            id=found[0]["id"], session_id=session_id, request=request, message=message,
            created_at=now,
        )  # fmt: skip

    async def take_failure(self, session_id: int, failure_id: int | None = None) -> Failure | None:
        """One ``DELETE … RETURNING`` statement, so of two concurrent takers exactly one gets
        the row and a failure is retried at most once."""
        if failure_id is None:
            where = "id = (SELECT MAX(id) FROM failures WHERE session_id = ?)"
            params: tuple[int, ...] = (session_id,)
        else:
            where = "id = ? AND session_id = ?"
            params = (failure_id, session_id)
        found, _ = await self._pool.write(
            f"DELETE FROM failures WHERE {where} RETURNING {_FAILURE_COLUMNS}", params
        )
        return rows.failure(found[0]) if found else None

    async def latest_failure(self, session_id: int) -> Failure | None:
        found = await self._pool.read(
            f"SELECT {_FAILURE_COLUMNS} FROM failures WHERE session_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (session_id,),
        )
        return rows.failure(found[0]) if found else None

    async def clear_failures(self, session_id: int) -> None:
        await self._pool.write("DELETE FROM failures WHERE session_id = ?", (session_id,))

    # -- deliveries and rate windows ----------------------------------------------------------

    async def claim_delivery(self, key: str, *, ttl: float = 86400) -> bool:
        """One upsert: a new key is inserted, an expired one is taken over (its expiry moved),
        a live one is left alone and returns no row."""
        now = self._clock()
        prune = self._due("deliveries")

        def claim(db: sqlite3.Connection) -> bool:
            if prune:
                db.execute("DELETE FROM deliveries WHERE expires_at <= ?", (now,))
            return bool(
                db.execute(
                    """
                    INSERT INTO deliveries (key, expires_at) VALUES (?, ?)
                    ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
                    WHERE deliveries.expires_at <= ?
                    RETURNING key
                    """,
                    (key, now + ttl, now),
                ).fetchall()
            )

        return await self._pool.transaction(claim)

    async def rate_hit(
        self, key: str, *, window: float, limit: int, count: bool = True
    ) -> float | None:
        """One write on the writer: SQLite's one writer per file makes the read-then-insert
        atomic across processes."""
        rows.check_window(window, limit)
        now = self._clock()
        prune = self._due("rate_hits")

        def hit(db: sqlite3.Connection) -> float | None:
            if prune:
                db.execute("DELETE FROM rate_hits WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM rate_hits WHERE key = ? AND expires_at <= ?", (key, now))
            # The limit-th newest hit still inside the window: once it leaves, one is free.
            full = db.execute(
                "SELECT at FROM rate_hits WHERE key = ? AND at > ?"
                " ORDER BY at DESC LIMIT 1 OFFSET ?",
                (key, now - window, limit - 1),
            ).fetchone()
            if full is not None:
                return float(full["at"]) + window - now
            if count:
                db.execute(
                    "INSERT INTO rate_hits (key, at, expires_at) VALUES (?, ?, ?)",
                    (key, now, now + window),
                )
            return None

        return await self._pool.transaction(hit)

    # -- jobs -------------------------------------------------------------------------------

    async def add_job(
        self, *, delivery: str, lane: str, kind: str, payload: Mapping[str, Any]
    ) -> Job | None:
        document = rows.dump_object(payload, "payload")
        found, _ = await self._pool.write(
            f"""
            INSERT INTO jobs (delivery, lane, kind, payload, state, attempts, created_at)
            VALUES (?, ?, ?, ?, 'queued', 0, ?)
            ON CONFLICT (delivery) DO NOTHING
            RETURNING {_JOB_COLUMNS}
            """,
            (delivery, lane, kind, document, self._clock()),
        )
        return rows.job(found[0]) if found else None

    async def claim_job(
        self, owner: str, *, stale_after: float, kinds: Sequence[str] | None = None
    ) -> Job | None:
        """One ``UPDATE … WHERE id = (the claimable one) RETURNING`` statement, inside the
        writer's ``BEGIN IMMEDIATE``: the write lock is held before anything is read, so two
        claimers (two stores on one file, two processes) take turns and the second sees the
        first's claim."""
        if kinds is not None and not kinds:
            return None
        now = self._clock()
        cutoff = now - stale_after
        only, kind_params = _kinds_filter(kinds)
        found, _ = await self._pool.write(
            f"""
            UPDATE jobs SET state = 'running', owner = :owner, attempts = attempts + 1,
                            claimed_at = :now, heartbeat_at = :now
            WHERE id = ({_CLAIMABLE.replace("/* kinds */", only)})
            RETURNING {_JOB_COLUMNS}
            """,
            {"owner": owner, "now": now, "cutoff": cutoff, **kind_params},
        )
        return rows.job(found[0]) if found else None

    async def heartbeat(self, owner: str) -> None:
        await self._pool.write(
            "UPDATE jobs SET heartbeat_at = ? WHERE owner = ? AND state = 'running'",
            (self._clock(), owner),
        )

    async def job_progress(self, job_id: int, progress: Mapping[str, Any]) -> None:
        document = rows.dump_object(progress, "progress")
        await self._pool.write("UPDATE jobs SET progress = ? WHERE id = ?", (document, job_id))

    async def finish_job(
        self, job_id: int, *, state: Literal["done", "failed"] = "done", owner: str | None = None
    ) -> bool:
        if state not in FINISHED_STATES:
            raise ValueError(f"a job finishes 'done' or 'failed', not {state!r}")
        now = self._clock()
        prune = self._due("jobs")

        def finish(db: sqlite3.Connection) -> bool:
            done = db.execute(
                "UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?"
                " AND (? IS NULL OR owner = ?)",
                (state, now, job_id, owner, owner),
            ).rowcount
            if prune:
                db.execute(_PRUNE_JOBS, (now - FINISHED_JOB_TTL,))
            return bool(done)

        return await self._pool.transaction(finish)

    async def count_jobs(self, state: JobState) -> int:
        found = await self._pool.read("SELECT COUNT(*) AS n FROM jobs WHERE state = ?", (state,))
        return int(found[0]["n"])

    async def get_job(self, job_id: int) -> Job | None:
        found = await self._pool.read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return rows.job(found[0]) if found else None

    async def prune_jobs(self, older_than: float = FINISHED_JOB_TTL) -> int:
        _, deleted = await self._pool.write(_PRUNE_JOBS, (self._clock() - older_than,))
        return deleted

    # -- API tokens and shared secrets ---------------------------------------------------------

    async def add_token(
        self, user: str, token_hash: str, *, label: str = "", expires_at: float | None = None
    ) -> ApiToken:
        now = self._clock()
        with _refusals():
            found, _ = await self._pool.write(
                "INSERT INTO api_tokens (owner, label, hash, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (user, label, token_hash, now, expires_at),
            )
        return ApiToken(
            id=found[0]["id"], user=user, label=label, created_at=now, expires_at=expires_at,
            revoked_at=None, last_used_at=None,
        )  # fmt: skip

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """A read on a reader (by the unique index on ``hash``); a write only when the
        recorded use is a minute old, and then guarded, so two requests at once write once."""
        now = self._clock()
        found = await self._pool.read(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE hash = ? AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (token_hash, now),
        )
        if not found:
            return None
        token = rows.token(found[0])
        if token.last_used_at is not None and token.last_used_at > now - TOKEN_TOUCH_EVERY:
            return token
        touched, _ = await self._pool.write(
            "UPDATE api_tokens SET last_used_at = ? WHERE id = ?"
            " AND (last_used_at IS NULL OR last_used_at <= ?) RETURNING last_used_at",
            (now, token.id, now - TOKEN_TOUCH_EVERY),
        )
        return replace(token, last_used_at=now) if touched else token

    async def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens"
        params: tuple[str, ...] = ()
        if user is not None:
            sql += " WHERE owner = ?"
            params = (user,)
        found = await self._pool.read(sql + " ORDER BY id DESC", params)
        return [rows.token(row) for row in found]

    async def revoke_token(self, token_id: int) -> bool:
        _, changed = await self._pool.write(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (self._clock(), token_id),
        )
        return changed > 0

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """A read first (the usual case: it exists); else insert-if-absent and read back in
        one write transaction, which SQLite's one writer per file makes atomic."""
        found = await self._pool.read("SELECT value FROM secrets WHERE name = ?", (name,))
        if found:
            return bytes(found[0]["value"])
        value = bytes(make())

        def store(db: sqlite3.Connection) -> bytes:
            db.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
            (kept,) = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return bytes(kept)

        return await self._pool.transaction(store)

    # -- plumbing ---------------------------------------------------------------------------

    def _due(self, table: str) -> bool:
        """Whether this call should also prune ``table`` (every PRUNE_EVERY-th call)."""
        self._calls[table] += 1
        return self._calls[table] % PRUNE_EVERY == 0
