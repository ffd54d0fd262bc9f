from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App, build
from bot.config import Config
from bot.values import Caller, Reply
from engines import Engine, FakeEngine, ModelSpec

CALLER = Caller(
    platform="console", workspace="local", user="alice", channel="terminal", trusted=True
)


def fenced(code: str, lang: str = "python", note: str = "") -> str:
    return f"{note}\n\n```{lang}\n{code}\n```\n".lstrip()


@pytest.fixture
def fake() -> FakeEngine:
    """The engine every model reference resolves to in these tests (echo unless scripted)."""
    return FakeEngine()


@pytest.fixture
def db_target(tmp_path: Path) -> Path | str:
    """The database the ``app`` fixture opens: a SQLite file (a module that runs on both
    backends overrides this with :func:`both_backends`)."""
    return tmp_path / "ct.db"


@pytest.fixture
async def app(db_target: Path | str, fake: FakeEngine) -> AsyncIterator[App]:
    def factory(spec: ModelSpec) -> Engine:
        return fake

    config = Config(db_path=db_target, model="fake:echo", rate_limit_per_minute=0)
    app = await build(config, engine_factory=factory)
    await app.start()
    yield app
    await app.aclose()


async def collect(replies: AsyncIterator[Reply]) -> list[Reply]:
    return [event async for event in replies]


def both_backends(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """``db_target`` for a module whose tests run on SQLite and on a real PostgreSQL:
    ``db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)``."""
    if request.param == "sqlite":
        return tmp_path / "ct.db"
    return str(request.getfixturevalue("postgres_db"))
