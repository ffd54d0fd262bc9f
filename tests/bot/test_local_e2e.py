"""End to end through the real composition root with the local engine and the tiny trained model.

``build(Config(model="hf:<path>"))`` picks the real engine factory; the model loads in
``app.start()`` (or in the background while a turn waits), and every turn goes through the core:
prompt building, streaming, code extraction and the store. No network, no timing assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from bot.app import App, build
from bot.config import Config
from bot.prompts import PromptBudget, build_messages
from bot.values import Done, Loading, Progress, Reply, Started
from engines import ChatMessage
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


async def test_an_hf_sessions_history_is_trimmed_by_the_tokenizers_counts(
    unstarted: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = unstarted
    await app.start()
    engine = engine_of(app)
    session = await app.service.start(caller=CALLER, key=key(), prompt="write greet")
    # earlier versions whose code the tiny tokenizer needs about a token per character for:
    # the 3.5-characters-per-token estimate would keep them all, and overflow the model
    rng = random.Random(7)
    for n in range(8):
        junk = "".join(rng.choice("{}[]();:#!?*+=/|<>~^%$@&") for _ in range(280))
        await app.store.add_version(
            session.id, request=f"change {n}", code=junk, note="", model="tiny",
            prompt_tokens=None, completion_tokens=None, latency_ms=1,
        )  # fmt: skip
    await app.store.add_version(
        session.id, request="write greet", code=CODE, note="Here it is.", model="tiny",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip
    history = await app.store.list_versions(session.id)
    budget = PromptBudget(context_window=engine.context_window, reserve_for_answer=1024)
    python = app.service.language("python")
    untrimmed = build_messages(language=python, history=history, request="shout", budget=budget)
    assert len(untrimmed) == 2 + 2 * len(history)  # by the estimate, everything fits ...
    too_long = engine.count_tokens(untrimmed)
    assert too_long is not None and too_long > engine.context_window  # ... and the model refuses

    prompts: list[int] = []
    encode = engine._encode

    def recording(messages: Sequence[ChatMessage]) -> list[int]:
        prompts.append(len(messages))
        ids = encode(messages)
        prompts.append(len(ids))
        return ids

    monkeypatch.setattr(engine, "_encode", recording)
    events = await turn(app, session, "shout")
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    messages, tokens = prompts[-2:]  # what the model was given
    assert 4 <= messages < len(untrimmed) and tokens <= budget.prompt_tokens
    assert done.version.prompt_tokens == tokens
