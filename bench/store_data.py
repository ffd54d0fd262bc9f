"""The synthetic sessions database of ``bench/store.py``, and its bulk loads into both schemas.

A :class:`Dataset` is made from a :class:`Shape` and a seed alone, so both backends get the same
rows. It is generated in batches as it is written (five million versions never sit in memory
at once) and keeps a :class:`Summary` of what the measurements pick from: each owner's home
place, the sessions that have versions, the session with the most, how many versions hold the
rare and the common search word.

The loads bypass the store's API only to be fast; the schema is the store's own (its
migrations ran first) and everything the store's triggers maintain ends up as they would leave
it. SQLite: plain ``sqlite3`` ``executemany`` in one transaction, every trigger firing (the
FTS5 trigram index fills row by row, as it does for the bot). PostgreSQL: asyncpg
``COPY`` with the ``versions`` triggers switched off (a session's ``updated_at`` is generated
as its last version's time, which is what ``versions_touch_session`` would write, and there
are no failures for ``versions_clear_failures`` to clear; foreign keys are still checked),
the pg_trgm GIN indexes dropped before and rebuilt after from their own definitions, then
``VACUUM ANALYZE``.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from array import array
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

__all__ = ["COMMON_WORD", "RARE_WORD", "Dataset", "Load", "Shape", "Summary", "empty_postgres"]

PLATFORMS = {"slack": ("T01", "T02", "T03"), "discord": ("G01", "G02")}
LANGUAGES = ("python", "javascript", "rust", "go", "bash")
MODEL = "gpt-4o-mini"
RARE_WORD = "xylophone"  # in one version request of every 100,000
COMMON_WORD = "csv"  # in about one version request of every 12
RARE_EVERY = 100_000
MAX_VERSIONS = 400  # a session's cap (the count is geometric: a few sessions run long)
EMPTY_SHARE = 0.1  # sessions without a version: a failed first ask, a non-code answer

_VERBS = ("write", "fix", "speed up", "explain", "add tests to", "refactor", "port",
          "simplify", "document", "add logging to")  # fmt: skip
_THINGS = ("a function that", "the loop that", "a class that", "a script that",
           "the handler that", "a small tool that", "the parser that", "a job that")  # fmt: skip
_TASKS = ("sorts the items", "reads a json file", "merges two lists", "counts the words",
          "retries on timeout", "parses dates", "walks a directory", "deduplicates users",
          "streams a log file", "resizes images", "validates an email address",
          "caches responses", f"exports a {COMMON_WORD} report")  # fmt: skip
_EXTRAS = ("", "", "", " and keep it short", " with type hints", " without recursion",
           " for large inputs", " and handle errors")  # fmt: skip
_NOTES = ("", "Uses a set to drop duplicates.", "Reads the file lazily, line by line.",
          "O(n log n); stable for equal keys.", "Retries three times with backoff.",
          "Keeps the public names unchanged.")  # fmt: skip


def _code_pool(rng: random.Random, size: int = 96) -> list[str]:
    """Distinct snippets of 200 to 900 characters, so that the trigram indexes see varied
    text rather than one string five million times."""
    names = ("solve", "merge", "parse", "load", "count", "walk", "check", "render", "fetch")
    lines = ("    result = []", "    for item in items:", "        if item is None:",
             "            continue", "        result.append(item)", "    seen = set()",
             "    total = sum(len(x) for x in items)", "    items = sorted(items, key=str.lower)",
             "    with open(path) as handle:", "        data = handle.read()",
             "    return result", "    raise ValueError('empty input')")  # fmt: skip
    pool = []
    for n in range(size):
        body = [rng.choice(lines) for _ in range(rng.randint(4, 24))]
        pool.append(f"def {rng.choice(names)}_{n}(items):\n" + "\n".join(body) + "\n")
    return pool


@dataclass(frozen=True, kw_only=True)
class Shape:
    """How big the database is: ``versions_per_session`` is the mean over all sessions."""

    sessions: int
    owners: int
    versions_per_session: float
    seed: int


@dataclass(kw_only=True)
class Summary:
    """What the generator wrote, for the measurements to pick from (filled while it runs)."""

    sessions: int = 0
    versions: int = 0
    homes: dict[str, tuple[str, str]] = field(default_factory=dict)
    with_versions: array[int] = field(default_factory=lambda: array("q"))
    longest: tuple[int, int] = (0, 0)  # (session id, its version count)
    rare: int = 0  # versions whose request holds RARE_WORD
    common: int = 0  # versions whose request holds COMMON_WORD


@dataclass(frozen=True, kw_only=True)
class Load:
    """How long a bulk load took (seconds): writing the rows, then indexes and statistics."""

    rows_s: float
    index_s: float
    size_bytes: int
    server: str  # what held the rows, e.g. "SQLite 3.40.1"

    @property
    def total_s(self) -> float:
        return self.rows_s + self.index_s


SessionRow = tuple[int, str, str, str, str, str, str, str, str, float, float]
VersionRow = tuple[int, int, str, str, str, str, int, int, int, str, float]


class Dataset:
    """The rows of one :class:`Shape`, in batches of whole sessions (see :meth:`batches`)."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.summary = Summary()
        self.now = time.time()  # the times are this far back, on every pass alike

    def batches(
        self, sessions: int = 20_000
    ) -> Iterator[tuple[list[SessionRow], list[VersionRow]]]:
        """Session and version rows, ``sessions`` sessions at a time, ids from 1; the same
        rows on every call. Fills :attr:`summary` afresh as it goes."""
        shape = self.shape
        rng = random.Random(shape.seed)
        codes = _code_pool(rng)
        summary = self.summary = Summary()
        owners = []
        for number in range(shape.owners):
            platform = rng.choice(list(PLATFORMS))
            owner = f"U{number:06d}"
            owners.append(owner)
            summary.homes[owner] = (platform, rng.choice(PLATFORMS[platform]))
        # versions per session: none for EMPTY_SHARE, else geometric with the mean that
        # makes the overall mean versions_per_session
        mean = max(1.0, shape.versions_per_session / (1 - EMPTY_SHARE))
        log_stay = math.log(1 - 1 / mean) if mean > 1 else None
        now = self.now
        session_rows: list[SessionRow] = []
        version_rows: list[VersionRow] = []
        for n in range(shape.sessions):
            session_id = n + 1
            owner = owners[rng.randrange(shape.owners)]
            if rng.random() < 0.8:
                platform, workspace = summary.homes[owner]
            else:
                platform = rng.choice(list(PLATFORMS))
                workspace = rng.choice(PLATFORMS[platform])
            count = 0
            if rng.random() >= EMPTY_SHARE:
                count = 1
                if log_stay is not None:
                    count += int(math.log(1.0 - rng.random()) / log_stay)
                count = min(count, MAX_VERSIONS)
            created = now - rng.uniform(0, 365 * 86400)
            at = created
            title = ""
            for number in range(1, count + 1):
                at = min(now, at + rng.expovariate(1 / 120))
                request = self._request(rng, summary.versions)
                title = title or request[:80]
                version_rows.append(
                    (session_id, number, request, rng.choice(codes), rng.choice(_NOTES), MODEL,
                     rng.randint(50, 2000), rng.randint(50, 1500), rng.randint(300, 9000),
                     "ok", at)
                )  # fmt: skip
                summary.versions += 1
            if count:
                summary.with_versions.append(session_id)
                if count > summary.longest[1]:
                    summary.longest = (session_id, count)
            session_rows.append(
                (session_id, platform, workspace, f"C{rng.randrange(50):03d}",
                 f"{n}.{rng.randrange(10**6):06d}", owner, rng.choice(LANGUAGES), MODEL,
                 title or "(no answer yet)", created, at)
            )  # fmt: skip
            summary.sessions += 1
            if len(session_rows) >= sessions:
                yield session_rows, version_rows
                session_rows, version_rows = [], []
        if session_rows:
            yield session_rows, version_rows

    def _request(self, rng: random.Random, index: int) -> str:
        text = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} {rng.choice(_TASKS)}"
        text += rng.choice(_EXTRAS)
        if index % RARE_EVERY == 7:
            text += f" (the {RARE_WORD} one)"
            self.summary.rare += 1
        if COMMON_WORD in text:
            self.summary.common += 1
        return text

    # -- loads --------------------------------------------------------------------------------

    def load_sqlite(self, path: Path) -> Load:
        """Write every row into the migrated, empty SQLite file at ``path`` (see the module)."""
        start = time.perf_counter()
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            # A fresh file: a rollback journal holds next to nothing, where WAL would write
            # every page twice; the store turns WAL back on when it opens the file.
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
            conn.execute("BEGIN")
            for session_rows, version_rows in self.batches():
                conn.executemany(
                    "INSERT INTO sessions (id, platform, workspace, channel, thread, owner,"
                    " language, model, title, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    session_rows,
                )
                conn.executemany(
                    "INSERT INTO versions (session_id, number, request, code, note, model,"
                    " prompt_tokens, completion_tokens, latency_ms, status, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    version_rows,
                )
            conn.execute("COMMIT")
            rows_s = time.perf_counter() - start
            conn.execute("ANALYZE")
            conn.execute("PRAGMA journal_mode = WAL")
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        index_s = time.perf_counter() - start - rows_s
        server = f"SQLite {sqlite3.sqlite_version}"
        return Load(rows_s=rows_s, index_s=index_s, size_bytes=size, server=server)

    async def load_postgres(self, dsn: str) -> Load:
        """Write every row into the migrated, empty PostgreSQL database ``dsn`` (see the
        module)."""
        conn: Any = await asyncpg.connect(dsn)
        try:
            start = time.perf_counter()
            trigram = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = 'versions'"
                " AND indexdef LIKE '%gin_trgm_ops%' ORDER BY indexname"
            )
            for index in trigram:
                await conn.execute(f'DROP INDEX "{index["indexname"]}"')
            await conn.execute("ALTER TABLE versions DISABLE TRIGGER USER")
            try:
                for session_rows, version_rows in self.batches(50_000):
                    await conn.copy_records_to_table(
                        "sessions", records=session_rows, columns=_SESSION_COLUMNS
                    )
                    await conn.copy_records_to_table(
                        "versions", records=version_rows, columns=_VERSION_COLUMNS
                    )
            finally:
                await conn.execute("ALTER TABLE versions ENABLE TRIGGER USER")
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('sessions', 'id'),"
                " (SELECT COALESCE(MAX(id), 0) + 1 FROM sessions), false)"
            )
            rows_s = time.perf_counter() - start
            await conn.execute("SET maintenance_work_mem = '512MB'")
            for index in trigram:
                await conn.execute(index["indexdef"])  # as m006_search created it
            await conn.execute("VACUUM ANALYZE")
            index_s = time.perf_counter() - start - rows_s
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            server = "PostgreSQL {}, shared_buffers {}".format(
                await conn.fetchval("SHOW server_version"),
                await conn.fetchval("SHOW shared_buffers"),
            )
        finally:
            await conn.close()
        return Load(rows_s=rows_s, index_s=index_s, size_bytes=int(size), server=server)


_SESSION_COLUMNS = ("id", "platform", "workspace", "channel", "thread", "owner", "language",
                    "model", "title", "created_at", "updated_at")  # fmt: skip
_VERSION_COLUMNS = ("session_id", "number", "request", "code", "note", "model",
                    "prompt_tokens", "completion_tokens", "latency_ms", "status",
                    "created_at")  # fmt: skip


async def empty_postgres(dsn: str) -> None:
    """Remove every row the benchmark wrote (loaded, or added by its turns) from ``dsn``."""
    conn: Any = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "TRUNCATE sessions, versions, runs, failures, files, artifacts, deliveries,"
            " rate_hits, jobs RESTART IDENTITY"
        )
    finally:
        await conn.close()
