"""Runs on run workers: ``serve`` with ``run_workers = true`` writes each run down as a job and
a ``codethread worker`` (another process, here another app on the same database) performs it
in its own real sandbox; the result, output files included, comes back as if run here.
On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App, build
from bot.config import Config
from bot.remote_runs import JobPool
from bot.server import work
from engines import FakeEngine
from storage import SessionKey

from .conftest import CALLER, both_backends, collect, fenced

db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)
_threads = itertools.count(1)

PLOT = "import sys\nopen('out.txt', 'w').write(sys.stdin.read().upper())\nprint(sys.argv[1:])\n"


@pytest.fixture
async def chat(db_target: Path | str, fake: FakeEngine) -> AsyncIterator[App]:
    """The serving side: no sandbox of its own is used, its runs are jobs."""
    config = Config(db_path=db_target, model="fake:echo", rate_limit_per_minute=0, run_workers=True)
    app = await build(config, engine_factory=lambda spec: fake, adapters=False)
    await app.start()
    yield app
    await app.aclose()


@contextlib.asynccontextmanager
async def run_worker(db_target: Path | str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    config = Config(db_path=db_target, model="fake:echo", job_stale_after=5)
    task = asyncio.create_task(work(config, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def _session(app: App, fake: FakeEngine, code: str) -> int:
    fake.responder = lambda request: fenced(code)
    key = SessionKey(platform="console", workspace="local", channel="t", thread=f"{next(_threads)}")
    session = await app.service.start(caller=CALLER, key=key, prompt="x")
    await collect(app.service.turn(session, CALLER, "write it"))
    return session.id


async def test_a_run_is_performed_by_a_worker_with_its_input_and_files(
    chat: App, fake: FakeEngine, db_target: Path | str
) -> None:
    assert isinstance(chat.runs.pool, JobPool) and chat.runs.can_run
    probe = await build(Config(db_path=db_target, model="fake:echo"), adapters=False)
    try:
        await probe.runs.prepare()
        if not probe.runs.can_run:
            pytest.skip(f"no sandbox here: {probe.runs.disabled}")
    finally:
        await probe.aclose()
    session_id = await _session(chat, fake, PLOT)
    await chat.store.add_file(session_id, "data.txt", b"unused but present")

    async with run_worker(db_target):
        report = await chat.runs.run(session_id, CALLER, stdin="hello", args=["-v", "x y"])

    result = report.result
    assert result.status == "ok", result.message
    assert result.stdout == "['-v', 'x y']\n"
    assert [(a.name, a.data) for a in result.artifacts] == [("out.txt", b"HELLO")]
    run = await chat.store.latest_run(report.version.id)
    assert run is not None and run.stdin == "hello" and run.artifacts == ("out.txt",)
    assert await chat.store.count_jobs("done") == 1


async def test_a_run_no_worker_takes_says_so(chat: App, fake: FakeEngine) -> None:
    pool = chat.runs.pool
    assert isinstance(pool, JobPool)
    pool.claim_timeout = 0.3
    session_id = await _session(chat, fake, "print(1)")

    report = await chat.runs.run(session_id, CALLER)

    assert report.result.status == "unavailable"
    assert "is `codethread worker` running?" in report.result.message
    assert await chat.store.count_jobs("queued") == 0  # withdrawn, not left for later
