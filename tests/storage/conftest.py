"""Fixtures for the store's tests: a test taking ``db`` (or ``store``) runs on both backends.

PostgreSQL is a real server (tests/postgres.py), one per test session, started the first time
a test needs it. Each test gets a fresh schema of its own in the server's database, named
first in the URL's ``search_path`` (asyncpg passes unknown URL parameters on as settings), so
the store migrates it from blank as it would a new database, and it is dropped after the
test: about a tenth of the time ``CREATE DATABASE`` takes (~0.3 s each here). ``pg_trgm`` is
created once, in ``public``, which every test's path ends in. Without server binaries the
PostgreSQL variants are skipped, with the reason.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from storage import Store, open_store
from storage.rows import Clock

_numbers = itertools.count(1)


class Ticks:
    """A clock that moves one second per reading, so ordering by time is deterministic."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class FakeClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def with_database(dsn: str, name: str) -> str:
    """``dsn`` naming database ``name`` instead."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def with_schema(dsn: str, schema: str) -> str:
    """``dsn`` whose connections look in ``schema`` first (and create their tables there)."""
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("search_path", f"{schema},public")]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    """One blank database of either backend, for one test; open it as often as needed (two
    stores on one database stand for two processes)."""

    kind: Literal["sqlite", "postgres"]
    target: str | Path

    async def open(self, clock: Clock = time.time) -> Store:
        return await open_store(self.target, clock=clock)

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        """Query the database behind the store's back (plain sqlite3, or one asyncpg
        connection)."""
        if isinstance(self.target, Path):
            with closing(sqlite3.connect(self.target)) as conn:
                return [tuple(row) for row in conn.execute(sql)]
        conn = await asyncpg.connect(self.target)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "codethread.db"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, db_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(kind="sqlite", target=db_path)
    return Database(kind="postgres", target=request.getfixturevalue("postgres_db"))


@pytest.fixture
async def store(db: Database) -> AsyncIterator[Store]:
    async with await db.open(clock=Ticks()) as store:
        yield store
