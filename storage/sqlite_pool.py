"""The SQLite store's connections: one writer and a few readers on one WAL file.

SQLite lets one connection write at a time (per file, across processes) but, in WAL mode, any
number read a consistent snapshot while it does. So reads here go to a small pool of reader
connections (``query_only``), each on its own thread, and never wait for a write; writes go
to the one writer connection, where they are serialized anyway, as SQLite requires. Writes
are committed in groups (see :class:`SqlitePool`), each group one function run on the
writer's thread: one hop from the event loop for a whole transaction, and no asyncio lock
for reads to queue behind (the old single-connection store spent ~99 % of its time under
load waiting for that lock).

Every connection is set up the same way: ``busy_timeout`` first (so that everything after it,
the WAL switch included, waits for another process instead of failing "database is locked"),
WAL, ``secure_delete``, ``foreign_keys``, ``synchronous = NORMAL``. A ``":memory:"`` database
is private to its connection, so it gets no readers: reads share the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from .errors import StoreError
from .migrations import migrate

__all__ = ["BUSY_TIMEOUT_MS", "READERS", "SqlitePool"]

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
READERS = 4  # enough for the bot's bursts of reads on two to eight cores; each is a thread
MAX_BATCH = 100  # writes per commit at most: a batch holds the file's write lock meanwhile


def prepare_path(path: str | Path) -> str:
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


async def _connect(target: str, *, reader: bool) -> aiosqlite.Connection:
    # isolation_level=None: no implicit transactions; the writer issues BEGIN/COMMIT itself.
    conn = await aiosqlite.connect(target, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        # PRAGMAs take no bound parameters; the values are constants of ours.
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        await _use_wal(conn)
        # Users delete snippets and files expecting them gone: zero what a delete frees.
        await conn.execute("PRAGMA secure_delete = ON")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        if reader:
            await conn.execute("PRAGMA query_only = ON")  # a write sent here fails loudly
    except BaseException:
        await conn.close()
        raise
    return conn


async def _in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the connection's sqlite3 connection on its thread, in turn with all
    else queued there: a whole transaction in one hop, which cancelling the caller cannot cut
    in half (the thread finishes it, commit or rollback, whatever the awaiting task does).

    aiosqlite has no public call for this; ``_execute`` and ``_conn`` are what its own methods
    are built on (the dependency is pinned to 0.22; every write in tests/storage goes here).
    """
    run: Callable[[], T] = lambda: fn(conn._conn)  # noqa: E731
    return cast(T, await conn._execute(run))  # type: ignore[no-untyped-call]


def _statement(
    db: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> tuple[list[Any], int]:
    cursor = db.execute(sql, params)
    try:
        return cursor.fetchall(), cursor.rowcount
    finally:
        cursor.close()


# A batch's outcome per write: (True, its result) or (False, the exception it raised).
Outcome = tuple[bool, Any]


def _commit_batch(
    db: sqlite3.Connection, bodies: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[Outcome]:
    """Run each body in a savepoint of one ``BEGIN IMMEDIATE`` transaction, then commit once.

    A body that raises is rolled back to its savepoint alone: the others still commit (a
    batch of one needs no savepoint: its rollback is the transaction's). When an error has
    ended the whole transaction (SQLite rolls back by itself on a full disk or an I/O error),
    the error is raised for the whole batch: none of it was written.
    """
    db.execute("BEGIN IMMEDIATE")  # the write lock now: no SQLITE_BUSY halfway through
    try:
        if len(bodies) == 1:
            outcomes: list[Outcome] = [(True, bodies[0](db))]
        else:
            outcomes = [_in_savepoint(db, body) for body in bodies]
        db.execute("COMMIT")
    except BaseException as err:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if len(bodies) == 1 and isinstance(err, Exception):
            return [(False, err)]  # the one write's own error, as a savepoint would give it
        raise
    return outcomes


def _in_savepoint(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], Any]) -> Outcome:
    db.execute("SAVEPOINT one_write")
    try:
        outcome: Outcome = (True, body(db))
    except Exception as err:
        if not db.in_transaction:
            raise
        db.execute("ROLLBACK TO one_write")
        outcome = (False, err)
    db.execute("RELEASE one_write")
    return outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class _Write:
    body: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]


class SqlitePool:
    """One writer and ``readers`` reader connections to one database file.

    Writes are committed in groups: while one batch runs on the writer's thread, the writes
    that arrive queue up, and the next batch takes them all (up to MAX_BATCH) into one
    transaction, each in a savepoint of its own, with one commit and one hop for the lot.
    Alone, a write is a batch of one and waits for nothing; under a burst, two hundred turns'
    writes cost a few commits instead of two hundred (a commit rewrites every page the write
    touched into the WAL: the sessions and versions b-trees, their indexes, the FTS index).
    Each write still succeeds or fails on its own, and its caller hears of it only once it is
    committed. A write whose caller was cancelled before its batch began is dropped.
    """

    def __init__(
        self, writer: aiosqlite.Connection, readers: Sequence[aiosqlite.Connection], name: str
    ) -> None:
        """Wrap open connections; prefer :meth:`open`."""
        self.name = name
        self._writer = writer
        self._readers = tuple(readers)
        self._in_flight = [0] * len(self._readers)  # reads queued on each reader's thread
        self._pending: list[_Write] = []
        self._committer: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, readers: int = READERS) -> SqlitePool:
        """Open (creating it if needed) and migrate the database, then open its readers."""
        target = await asyncio.to_thread(prepare_path, path)
        writer = await _connect(target, reader=False)
        opened: list[aiosqlite.Connection] = []
        try:
            await migrate(writer)
            if target != ":memory:":
                for _ in range(readers):
                    opened.append(await _connect(target, reader=True))
        except BaseException:
            for conn in (*opened, writer):
                await conn.close()
            raise
        return cls(writer, opened, target)

    async def read(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """Rows of one query, on the least busy reader (on the writer for ``":memory:"``).

        The query goes straight onto that reader's thread queue, not into an asyncio queue
        of free connections: a thread works through queued reads back to back, where handing
        a connection from one task to the next would cost event-loop turns each time (under a
        burst of 200 reads that handover, not SQLite, was most of a read's wait).
        """
        self._check_open()
        if not self._readers:
            return list(await self._writer.execute_fetchall(sql, params))
        index = min(range(len(self._readers)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            return list(await self._readers[index].execute_fetchall(sql, params))
        finally:
            self._in_flight[index] -= 1

    async def write(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> tuple[list[sqlite3.Row], int]:
        """One statement on the writer; its rows and its rowcount, once committed."""
        return await self.transaction(lambda db: _statement(db, sql, params))

    async def transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body(db)``, atomically, on the writer's thread; its result once committed, or
        what it raised once rolled back. ``body`` runs on that thread: plain sqlite3 calls,
        no awaiting, and no BEGIN or COMMIT of its own (it runs in a savepoint)."""
        self._check_open()
        write = _Write(body=body, done=asyncio.get_running_loop().create_future())
        self._pending.append(write)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        return cast(T, await write.done)

    async def _commit_pending(self) -> None:
        """Commit the queued writes, a batch at a time, until none is left."""
        while self._pending:
            batch = [w for w in self._pending[:MAX_BATCH] if not w.done.cancelled()]
            del self._pending[:MAX_BATCH]
            if not batch:
                continue
            commit = partial(_commit_batch, bodies=[w.body for w in batch])
            try:
                outcomes = await _in_thread(self._writer, commit)
            except Exception as err:  # nothing of the batch was written
                outcomes = [(False, err)] * len(batch)
            for write, (ok, value) in zip(batch, outcomes, strict=True):
                if write.done.done():  # its caller was cancelled meanwhile
                    continue
                if ok:
                    write.done.set_result(value)
                else:
                    write.done.set_exception(value)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The store {self.name!r} is closed.")

    async def close(self) -> None:
        """Let queued work finish and close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._committer is not None:
                await self._committer  # the writes already accepted are committed first
            for reader in self._readers:
                await reader.close()
            await self._writer.execute("PRAGMA optimize")
        finally:
            await self._writer.close()
