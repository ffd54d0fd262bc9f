"""The SQLite schema's migrations, recorded in ``PRAGMA user_version``.

(PostgreSQL's are :mod:`storage.postgres_migrations`: the same numbered steps, by the same
names, in that dialect.)

Each schema version is one small function ``mNNN_what(conn)`` in :data:`MIGRATIONS`; version N
is ``MIGRATIONS[N - 1]``. Names and bodies of released migrations never change: a schema change
is a new function appended to the list (e.g. ``m002_runs`` adding the sandbox's ``runs`` table).
Every migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the
``user_version`` bump, so a failure leaves the database at the previous version; the version is
read again under that lock, so connections migrating one fresh database at once (two processes
starting together) apply each migration exactly once.

Migrations use one ``conn.execute`` per statement (never ``executescript``, which commits).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aiosqlite

from .errors import StoreError

__all__ = ["MIGRATIONS", "Migration", "migrate", "schema_version"]

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def m001_initial(conn: aiosqlite.Connection) -> None:
    """Sessions keyed by their thread, and their append-only versions."""
    await conn.execute(
        """
        CREATE TABLE sessions (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            platform   TEXT NOT NULL,
            workspace  TEXT NOT NULL,
            channel    TEXT NOT NULL,
            thread     TEXT NOT NULL,
            owner      TEXT NOT NULL,
            language   TEXT NOT NULL,
            model      TEXT NOT NULL,
            title      TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (platform, workspace, channel, thread)
        )
        """
    )
    # "One owner's sessions on one platform and workspace, newest first": an index range scan
    # read backwards (updated_at DESC, then rowid DESC as the tie-break), no sort.
    await conn.execute(
        "CREATE INDEX sessions_owner_recent ON sessions (owner, platform, workspace, updated_at)"
    )
    # Listings without an owner: one workspace (or platform), or everything, newest first.
    await conn.execute(
        "CREATE INDEX sessions_place_recent ON sessions (platform, workspace, updated_at)"
    )
    await conn.execute("CREATE INDEX sessions_recent ON sessions (updated_at)")
    await conn.execute(
        """
        CREATE TABLE versions (
            id                INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id        INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            number            INTEGER NOT NULL CHECK (number >= 1),
            request           TEXT NOT NULL,
            code              TEXT NOT NULL,
            note              TEXT NOT NULL,
            model             TEXT NOT NULL,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            latency_ms        INTEGER NOT NULL,
            status            TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            created_at        REAL NOT NULL,
            UNIQUE (session_id, number)
        )
        """
    )


async def m002_runs(conn: aiosqlite.Connection) -> None:
    """Sandboxed runs of a version (``kind`` 'run') and of its unit tests ('test', with the
    generated test code in ``tests``).

    The value sets of ``status`` and ``limit_hit`` are the sandbox's; a new value there needs a
    migration here.
    """
    await conn.execute(
        """
        CREATE TABLE runs (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            version_id     INTEGER NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
            kind           TEXT NOT NULL CHECK (kind IN ('run', 'test')),
            status         TEXT NOT NULL
                           CHECK (status IN ('ok', 'failed', 'compile_error', 'limit',
                                             'unavailable')),
            exit_code      INTEGER,
            stdout         TEXT NOT NULL,
            stderr         TEXT NOT NULL,
            duration_ms    INTEGER NOT NULL,
            peak_memory_kb INTEGER,
            limit_hit      TEXT
                           CHECK (limit_hit IN ('wall_time', 'cpu_time', 'memory', 'file_size',
                                                'processes', 'output')),
            compile_output TEXT NOT NULL,
            tests          TEXT NOT NULL DEFAULT '',
            created_at     REAL NOT NULL
        )
        """
    )
    # A version's runs in order (and its latest, read backwards); also serves the cascade.
    await conn.execute("CREATE INDEX runs_version ON runs (version_id, id)")


async def m003_version_touches_session(conn: aiosqlite.Connection) -> None:
    """A new version bumps its session's ``updated_at`` in the same statement.

    This lets ``add_version`` be one atomic ``INSERT … SELECT … RETURNING`` (one round trip
    to the database thread instead of a five-statement transaction).
    """
    await conn.execute(
        """
        CREATE TRIGGER versions_touch_session AFTER INSERT ON versions
        BEGIN
            UPDATE sessions SET updated_at = NEW.created_at WHERE id = NEW.session_id;
        END
        """
    )


async def m004_failures(conn: aiosqlite.Connection) -> None:
    """The request of a turn whose answer failed, kept so Retry still works after a restart.

    A retry takes (deletes) the row it uses, so each failure is retried at most once. A
    session keeps only its latest failure (a newer one supersedes it), and a new version
    clears it; a failure bumps its session's ``updated_at`` (so a session whose
    ``updated_at`` is past its ``created_at`` but has no version is known to have failed
    without a query). Triggers, so that none of it costs the bot a statement per turn.
    """
    await conn.execute(
        """
        CREATE TABLE failures (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            request    TEXT NOT NULL,
            message    TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """
    )
    # A session's failures in order (its latest read backwards); also serves the cascade.
    await conn.execute("CREATE INDEX failures_session ON failures (session_id, id)")
    await conn.execute(
        """
        CREATE TRIGGER failures_latest_only BEFORE INSERT ON failures
        BEGIN
            DELETE FROM failures WHERE session_id = NEW.session_id;
        END
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER failures_touch_session AFTER INSERT ON failures
        BEGIN
            UPDATE sessions SET updated_at = NEW.created_at WHERE id = NEW.session_id;
        END
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER versions_clear_failures AFTER INSERT ON versions
        BEGIN
            DELETE FROM failures WHERE session_id = NEW.session_id;
        END
        """
    )


async def m005_run_inputs(conn: aiosqlite.Connection) -> None:
    """What a run was given: its standard input and its command-line arguments (a JSON list),
    so that a result can be read, and run again, with what produced it."""
    await conn.execute("ALTER TABLE runs ADD COLUMN stdin TEXT NOT NULL DEFAULT ''")
    await conn.execute("ALTER TABLE runs ADD COLUMN args TEXT NOT NULL DEFAULT '[]'")


async def m006_search(conn: aiosqlite.Connection) -> None:
    """Full-text search over every version's request, note and code (FTS5, trigram tokens, so
    that any substring of three or more characters is found through the index), kept in step
    with ``versions`` by triggers; existing versions are indexed here."""
    await conn.execute(
        """
        CREATE VIRTUAL TABLE versions_search USING fts5(
            request, note, code, content='versions', content_rowid='id', tokenize='trigram'
        )
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER versions_search_add AFTER INSERT ON versions
        BEGIN
            INSERT INTO versions_search (rowid, request, note, code)
            VALUES (NEW.id, NEW.request, NEW.note, NEW.code);
        END
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER versions_search_drop AFTER DELETE ON versions
        BEGIN
            INSERT INTO versions_search (versions_search, rowid, request, note, code)
            VALUES ('delete', OLD.id, OLD.request, OLD.note, OLD.code);
        END
        """
    )
    await conn.execute("INSERT INTO versions_search (versions_search) VALUES ('rebuild')")


async def m007_files(conn: aiosqlite.Connection) -> None:
    """Files the user attached to a session (``files``), and the files a run produced
    (``artifacts``), both stored whole as BLOBs and unique by name within their owner.

    Deleting a session deletes its files, and through its versions and their runs the
    artifacts. Attaching a file (or replacing one of the same name, an upsert that fires the
    UPDATE trigger) bumps its session's ``updated_at`` like a new version or a failure does;
    an artifact leaves it alone, as its run does. The ``UNIQUE`` indexes, led by the owner's
    id, also serve the cascades and the by-name listing of artifacts.
    """
    await conn.execute(
        """
        CREATE TABLE files (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            name       TEXT NOT NULL,
            size       INTEGER NOT NULL,
            data       BLOB NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (session_id, name)
        )
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER files_touch_session AFTER INSERT ON files
        BEGIN
            UPDATE sessions SET updated_at = NEW.created_at WHERE id = NEW.session_id;
        END
        """
    )
    await conn.execute(
        """
        CREATE TRIGGER files_replaced_touch_session AFTER UPDATE ON files
        BEGIN
            UPDATE sessions SET updated_at = NEW.created_at WHERE id = NEW.session_id;
        END
        """
    )
    await conn.execute(
        """
        CREATE TABLE artifacts (
            id     INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            name   TEXT NOT NULL,
            size   INTEGER NOT NULL,
            data   BLOB NOT NULL,
            UNIQUE (run_id, name)
        )
        """
    )


async def m008_durable(conn: aiosqlite.Connection) -> None:
    """Rows that used to live in one process's memory, so that replicas share them and a
    restart loses none: platform deliveries already handled (``deliveries``, a key with an
    expiry), hits in sliding rate windows (``rate_hits``, one row per hit, each expiring when
    it leaves its window) and accepted turns (``jobs``).

    A job's ``delivery`` is unique, so a redelivered event adds nothing; ``AUTOINCREMENT``
    keeps a pruned job's id from being handed out again (a late ``finish_job`` from a dead
    owner must not finish a new job). The partial indexes hold only the rows each query wants:
    unfinished jobs in order and by lane (the claim), running jobs by owner (the heartbeat),
    finished jobs by age (the pruning), so that a claim never reads the day of finished jobs
    kept behind it. The JSON checks are CASEs because ``json_type`` raises on text that
    is not JSON at all, where a CHECK should just refuse it.
    """
    await conn.execute(
        """
        CREATE TABLE deliveries (
            key        TEXT PRIMARY KEY,
            expires_at REAL NOT NULL
        )
        """
    )
    await conn.execute("CREATE INDEX deliveries_expiry ON deliveries (expires_at)")
    await conn.execute(
        """
        CREATE TABLE rate_hits (
            id         INTEGER PRIMARY KEY,
            key        TEXT NOT NULL,
            at         REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """
    )
    await conn.execute("CREATE INDEX rate_hits_key ON rate_hits (key, at)")
    await conn.execute("CREATE INDEX rate_hits_expiry ON rate_hits (expires_at)")
    await conn.execute(
        """
        CREATE TABLE jobs (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            delivery     TEXT NOT NULL UNIQUE,
            lane         TEXT NOT NULL,
            kind         TEXT NOT NULL,
            payload      TEXT NOT NULL CHECK (
                             CASE WHEN json_valid(payload) THEN json_type(payload) = 'object'
                                  ELSE 0 END),
            state        TEXT NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'running', 'done', 'failed')),
            owner        TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            progress     TEXT CHECK (
                             CASE WHEN progress IS NULL THEN 1
                                  WHEN json_valid(progress) THEN json_type(progress) = 'object'
                                  ELSE 0 END),
            created_at   REAL NOT NULL,
            claimed_at   REAL,
            heartbeat_at REAL,
            finished_at  REAL
        )
        """
    )
    await conn.execute("CREATE INDEX jobs_queue ON jobs (id) WHERE state IN ('queued', 'running')")
    await conn.execute(
        "CREATE INDEX jobs_open ON jobs (lane, id) WHERE state IN ('queued', 'running')"
    )
    await conn.execute("CREATE INDEX jobs_running ON jobs (owner) WHERE state = 'running'")
    await conn.execute(
        "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'failed')"
    )


async def m009_tokens(conn: aiosqlite.Connection) -> None:
    """Bearer tokens of the HTTP API (``api_tokens``) and the keys every replica must share
    (``secrets``, e.g. the one that signs web links).

    A token is kept as the SHA-256 of its text (``hash``, unique: the lookup's index), never
    the text, so a copy of the database holds no usable token; the length check refuses a
    token stored unhashed by mistake. The column is ``owner``, as on ``sessions``, because
    ``user`` is a reserved word in PostgreSQL. Revoking stamps ``revoked_at`` rather than
    deleting the row, so that a listing still shows what was revoked and when.
    """
    await conn.execute(
        """
        CREATE TABLE api_tokens (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            owner        TEXT NOT NULL,
            label        TEXT NOT NULL DEFAULT '',
            hash         TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
            created_at   REAL NOT NULL,
            expires_at   REAL,
            revoked_at   REAL,
            last_used_at REAL
        )
        """
    )
    # One user's tokens, newest first (read backwards).
    await conn.execute("CREATE INDEX api_tokens_owner ON api_tokens (owner, id)")
    await conn.execute(
        """
        CREATE TABLE secrets (
            name  TEXT PRIMARY KEY,
            value BLOB NOT NULL
        )
        """
    )


MIGRATIONS: Sequence[Migration] = (
    m001_initial,
    m002_runs,
    m003_version_touches_session,
    m004_failures,
    m005_run_inputs,
    m006_search,
    m007_files,
    m008_durable,
    m009_tokens,
)


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The database's ``PRAGMA user_version`` (0 for a blank database)."""
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(
    conn: aiosqlite.Connection, *, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Apply the migrations the database lacks, in order; return the resulting version.

    Idempotent. Raises :class:`StoreError` if the database is newer than ``migrations``
    (written by a later release), rather than guessing at its schema. Must be called outside
    a transaction.
    """
    current = await schema_version(conn)  # no lock taken when there is nothing to do
    while current < len(migrations):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another connection (a second process opening
            # the same fresh database) may have applied this migration since the last read.
            current = await schema_version(conn)
            if current < len(migrations):
                await migrations[current](conn)
                current += 1
                # PRAGMA takes no bound parameters; ``current`` is an int we produced.
                await conn.execute(f"PRAGMA user_version = {current:d}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
    if current > len(migrations):
        raise StoreError(
            f"The database schema is version {current}, newer than this release knows "
            f"({len(migrations)}); upgrade codethread."
        )
    return current
