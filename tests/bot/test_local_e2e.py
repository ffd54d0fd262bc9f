"""End to end through the real composition root with the local engine and the tiny trained model.

``build(Config(model="hf:<path>"))`` picks the real engine factory; the model loads in
``app.start()`` (or in the background while a turn waits), and every turn goes through the core:
prompt building, streaming, code extraction and the store. No network, no timing assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from bot.app import App, build
from bot.config import Config
from bot.values import Done, Loading, Progress, Reply, Started
from engines.local import LocalEngine
from storage import Session, SessionKey
from tests.fakes.tiny_model import CODE

from .conftest import CALLER, collect

LIMIT = 60
_threads = itertools.count()


def key() -> SessionKey:
    return SessionKey(
        platform="console", workspace="local", channel="terminal", thread=f"l{next(_threads)}"
    )


@pytest.fixture
async def unstarted(tmp_path: Path, tiny_model_path: Path) -> AsyncIterator[App]:
    config = Config(
        db_path=tmp_path / "ct.db", model=f"hf:{tiny_model_path}", rate_limit_per_minute=0
    )
    app = await build(config)
    yield app
    await app.aclose()


def engine_of(app: App) -> LocalEngine:
    engine = app.engines.get(app.engines.resolve(None))
    assert isinstance(engine, LocalEngine)
    return engine


async def turn(app: App, session: Session, text: str) -> list[Reply]:
    async with asyncio.timeout(LIMIT):
        return await collect(app.service.turn(session, CALLER, text))


async def test_a_prompt_and_a_feedback_reply_each_become_a_version(unstarted: App) -> None:
    app = unstarted
    await app.start()
    assert str(engine_of(app).readiness) == "ready"
    session = await app.service.start(caller=CALLER, key=key(), prompt="write a greeting function")

    first = await turn(app, session, "write a greeting function")
    assert isinstance(first[0], Started)
    assert sum(isinstance(e, Progress) for e in first) >= 3
    done = first[-1]
    assert isinstance(done, Done) and done.version.number == 1
    assert done.version.code == CODE and done.version.note == "Here it is."
    assert done.version.prompt_tokens and done.version.completion_tokens

    second = await turn(app, session, "make it shout, please")
    done = second[-1]
    assert isinstance(done, Done) and done.version.number == 2 and done.version.code == CODE
    versions = await app.store.list_versions(session.id)
    assert [v.request for v in versions] == ["write a greeting function", "make it shout, please"]


async def test_a_turn_during_loading_waits_and_is_told(unstarted: App) -> None:
    app = unstarted
    starting = asyncio.create_task(app.start())
    await asyncio.sleep(0)  # the pool has created the engine and begun loading it
    session = await app.service.start(caller=CALLER, key=key(), prompt="greet")
    events = await turn(app, session, "greet")
    assert isinstance(events[0], Loading)
    assert isinstance(events[-1], Done) and events[-1].version.code == CODE
    await starting


async def test_concurrent_sessions_are_served_together(unstarted: App) -> None:
    app = unstarted
    await app.start()
    engine = engine_of(app)
    sessions = [
        await app.service.start(caller=CALLER, key=key(), prompt=f"greet {i}") for i in range(4)
    ]
    opened = threading.Event()

    def hold(module: Any, args: Any) -> None:
        opened.wait(LIMIT)

    hook = engine.hf_model.register_forward_pre_hook(hold)
    try:
        turns = [asyncio.create_task(turn(app, s, f"greet {i}")) for i, s in enumerate(sessions)]
        async with asyncio.timeout(LIMIT):
            # every turn is queued at the held model (a counter the engine's thread updates)
            while engine.stats.submitted < 4:
                await asyncio.sleep(0.005)
        opened.set()
        results = await asyncio.gather(*turns)
    finally:
        opened.set()
        hook.remove()
    assert all(isinstance(r[-1], Done) and r[-1].version.code == CODE for r in results)
    assert engine.stats.peak_batch >= 2
