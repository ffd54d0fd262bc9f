from __future__ import annotations

import time

import pytest

from engines import (
    ChatMessage,
    EngineBusy,
    EngineTimeout,
    FakeEngine,
    GenerationRequest,
    Usage,
)

REQUEST = GenerationRequest(
    messages=(
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="first"),
        ChatMessage(role="assistant", content="ok"),
        ChatMessage(role="user", content="make it print 42"),
    )
)


async def collect(engine: FakeEngine, usage: Usage | None = None) -> list[str]:
    return [delta async for delta in engine.stream(REQUEST, usage)]


async def test_default_echo_wraps_the_last_user_message() -> None:
    engine = FakeEngine()
    await engine.start()
    assert str(engine.readiness) == "ready"
    assert "".join(await collect(engine)) == "```text\nmake it print 42\n```\n"
    assert engine.requests == [REQUEST]
    assert repr(engine) == "<FakeEngine fake:echo ready>"


async def test_chunks_and_usage() -> None:
    engine = FakeEngine(lambda request: "abcdefghij", chunk_size=4)
    usage = Usage()
    assert await collect(engine, usage) == ["abcd", "efgh", "ij"]
    assert usage == Usage(prompt_tokens=8, completion_tokens=3)  # words, chunks


async def test_delay_is_the_total_latency() -> None:
    engine = FakeEngine(lambda request: "x" * 40, chunk_size=4, delay=0.2)
    started = time.monotonic()
    chunks = await collect(engine)
    elapsed = time.monotonic() - started
    assert len(chunks) == 10
    assert 0.19 <= elapsed < 1.0


async def test_fail_before_any_chunk() -> None:
    engine = FakeEngine(fail=EngineBusy("busy"))
    with pytest.raises(EngineBusy, match="busy"):
        await collect(engine)
    assert len(engine.requests) == 1


async def test_fail_after_some_chunks() -> None:
    engine = FakeEngine(
        lambda request: "aabbcc", chunk_size=2, fail=EngineTimeout("slow"), fail_after=2
    )
    received: list[str] = []
    with pytest.raises(EngineTimeout):
        async for delta in engine.stream(REQUEST):
            received.append(delta)
    assert received == ["aa", "bb"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        FakeEngine(chunk_size=0)
    with pytest.raises(ValueError, match="delay"):
        FakeEngine(delay=-1)
