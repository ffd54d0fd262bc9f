"""The local engine against the tiny trained model (tests/fakes/tiny_model.py); no network.

Nothing here asserts timings: batching is checked with the engine's counters, and slow steps
are made deterministic by holding the model's forward pass at a gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from engines import (
    Catalog,
    ChatMessage,
    EngineBusy,
    EngineError,
    EngineNotReady,
    EngineUnavailable,
    GenerationRequest,
    ModelSpec,
    Usage,
    create_engine,
)
from engines.local import ChatMLEngine, LocalEngine, incremental_decoder
from engines.local_batching import Batcher
from tests.fakes.tiny_model import ANSWER, without_chat_template

LIMIT = 30  # seconds before a test gives up waiting (a hang is a failure, not a stall)
PER_THREAD_STATUS = Path("/proc/self/task").is_dir()  # Linux: each thread's counters


def request(text: str = "write a greeting function", **options: Any) -> GenerationRequest:
    messages = (
        ChatMessage(role="system", content="You write code. Answer with one fenced block."),
        ChatMessage(role="user", content=text),
    )
    return GenerationRequest(messages=messages, **{"temperature": 0.0, **options})


def spec_for(path: Path | str, scheme: str = "hf", **fields: Any) -> ModelSpec:
    return ModelSpec(name="tiny", ref=f"{scheme}:{path}", **fields)


async def answer(engine: LocalEngine, req: GenerationRequest | None = None) -> str:
    async with asyncio.timeout(LIMIT):
        return "".join([delta async for delta in engine.stream(req or request())])


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(LIMIT):
        while not condition():
            await asyncio.sleep(0.005)


@contextmanager
def gate(engine: LocalEngine) -> Iterator[threading.Event]:
    """Hold every forward pass of the model until the returned event is set."""
    opened = threading.Event()

    def wait(module: Any, args: Any) -> None:
        opened.wait(LIMIT)

    hook = engine.hf_model.register_forward_pre_hook(wait)
    try:
        yield opened
    finally:
        opened.set()
        hook.remove()


@pytest.fixture
async def engine(tiny_model_path: Path) -> AsyncIterator[LocalEngine]:
    engine = LocalEngine(spec_for(tiny_model_path))
    await engine.start()
    assert str(engine.readiness) == "ready"
    yield engine
    await engine.aclose()


async def test_streams_the_trained_answer_in_chunks(engine: LocalEngine) -> None:
    usage = Usage()
    async with asyncio.timeout(LIMIT):
        chunks = [delta async for delta in engine.stream(request(), usage)]
    assert "".join(chunks) == ANSWER
    assert len(chunks) >= 5
    assert usage.prompt_tokens and usage.prompt_tokens > 10
    assert usage.completion_tokens and usage.completion_tokens >= len(chunks)
    assert engine.context_window == 2048  # the model's max_position_embeddings, below the spec's
    assert engine.pending == 0 and engine.stats.generating == 0


async def test_answers_at_the_bots_low_temperature_and_after_earlier_turns(
    engine: LocalEngine,
) -> None:
    history = (
        ChatMessage(role="user", content="write greet"),
        ChatMessage(role="assistant", content=ANSWER),
        ChatMessage(role="user", content="make it shout, please"),
    )
    sampled = GenerationRequest(messages=history, temperature=0.2, max_tokens=200)
    assert await answer(engine, sampled) == ANSWER


async def test_spec_bounds_the_context_and_long_prompts_are_refused(tiny_model_path: Path) -> None:
    engine = LocalEngine(spec_for(tiny_model_path, context_window=64))
    await engine.start()
    try:
        assert engine.context_window == 64
        with pytest.raises(EngineError, match="more than the 64-token context"):
            await answer(engine, request("write " * 100))
    finally:
        await engine.aclose()


async def test_chatml_hooks_serve_a_tokenizer_without_chat_template(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    bare = without_chat_template(tiny_model_path, tmp_path / "bare")
    plain = LocalEngine(spec_for(bare))
    await plain.start()
    assert plain.readiness.state == "failed"
    assert f"no chat template: use hf-chatml:{bare}" in str(plain.readiness)

    calls: list[str] = []

    class Recording(ChatMLEngine):
        def format_prompt(self, messages: Sequence[ChatMessage]) -> str:
            calls.append("format_prompt")
            return super().format_prompt(messages)

        def clean_output(self, text: str) -> str:
            calls.append("clean_output")
            return super().clean_output(text)

    engine = Recording(spec_for(bare, scheme="hf-chatml"))
    await engine.start()
    try:
        assert await answer(engine) == ANSWER
        assert calls[0] == "format_prompt" and "clean_output" in calls
        stops = engine.tokenizer.convert_ids_to_tokens(list(engine.eos_token_ids))
        assert {"<|im_end|>", "<|im_start|>"} <= set(stops)
    finally:
        await engine.aclose()


def test_registry_builds_the_chatml_engine_for_hermes_and_hf_chatml() -> None:
    catalog = Catalog.builtin()
    hermes = create_engine(catalog.resolve("hermes"))
    assert type(hermes) is ChatMLEngine and hermes.model == "NousResearch/Hermes-3-Llama-3.1-8B"
    assert type(create_engine(catalog.resolve("qwen-coder"))) is LocalEngine
    assert type(create_engine(catalog.resolve("hf-chatml:./m"))) is ChatMLEngine


def test_chatml_clean_output_cuts_and_holds_back_markers() -> None:
    engine = ChatMLEngine(spec_for("./unused", scheme="hf-chatml"))
    assert engine.clean_output("code<|im_end|>\n<|im_start|>user") == "code"
    assert engine.clean_output("code<|im_") == "code"  # maybe a marker: wait
    assert engine.clean_output("a < b") == "a < b"
    assert engine.clean_output("a <") == "a "


async def test_decode_stream_matches_a_full_decode_of_multibyte_text(engine: LocalEngine) -> None:
    tokenizer = engine.tokenizer
    text = 'Voilà: ```python\nprint("日本語 ✓ naïve")\n```'
    ids = tokenizer.encode(text, add_special_tokens=False)
    # the byte-level tokenizer splits these characters across tokens: the test means something
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)
    decode = incremental_decoder(tokenizer)
    chunks = [decode([i]) for i in ids]  # one token at a time, as the model makes them
    assert "".join(chunks) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert "" in chunks  # a partial character was held back ...
    assert not any("\ufffd" in chunk for chunk in chunks)  # ... and never shown broken
    several = incremental_decoder(tokenizer)  # a step may bring several tokens at once
    assert "".join(several(ids[n : n + 3]) for n in range(0, len(ids), 3)) == text


def test_a_tokenizer_without_a_rust_backend_decodes_too(engine: LocalEngine) -> None:
    class PythonOnly:  # only decode(), like a tokenizer with no ``tokenizers`` backend
        def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
            return str(engine.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    text = "naïve 日本語"
    ids = engine.tokenizer.encode(text, add_special_tokens=False)
    decode = incremental_decoder(PythonOnly())
    chunks = [decode([i]) for i in ids]
    assert "".join(chunks) == text and not any("\ufffd" in chunk for chunk in chunks)


def wakeups(thread_ids: Sequence[int]) -> int:
    """How often these threads have been woken up (voluntary context switches, from /proc)."""
    total = 0
    for tid in thread_ids:
        with contextlib.suppress(FileNotFoundError):  # a thread that has ended
            status = Path(f"/proc/self/task/{tid}/status").read_text()
            total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


async def test_an_idle_engine_wakes_no_thread(tiny_model_path: Path) -> None:
    if not PER_THREAD_STATUS:
        pytest.skip("counting wake-ups needs Linux's /proc")
    before = {t.native_id for t in threading.enumerate()}
    engine = LocalEngine(spec_for(tiny_model_path))
    await engine.start()
    try:
        assert await answer(engine) == ANSWER
        await until(lambda: engine.stats.parked)  # the generation loop is paused: idle
        mine = [t.native_id for t in threading.enumerate() if t.native_id not in before]
        assert len(mine) >= 2  # the generation thread and the one holding its pause
        woken = wakeups([tid for tid in mine if tid is not None])
        await asyncio.sleep(1.0)
        # a thread polling at 10 Hz (the manager's own idle wait) would wake ten times; a
        # blocked one never does (one spare for a library's slow monitor thread, e.g. tqdm's)
        assert wakeups([tid for tid in mine if tid is not None]) - woken <= 1
        assert engine.stats.parked
        assert await answer(engine) == ANSWER  # the next request lifts the pause
    finally:
        await engine.aclose()


async def test_count_tokens_is_the_length_of_the_prompt_the_model_gets(
    engine: LocalEngine, tiny_model_path: Path
) -> None:
    assert LocalEngine(spec_for(tiny_model_path)).count_tokens(request().messages) is None
    usage = Usage()
    async with asyncio.timeout(LIMIT):
        assert "".join([d async for d in engine.stream(request(), usage)]) == ANSWER
    assert engine.count_tokens(request().messages) == usage.prompt_tokens
    junk = "{}[]();:#!?*+=/|<>~^%$@&" * 10  # the tiny tokenizer gives about a token a character
    counted = engine.count_tokens(request(junk).messages)
    assert counted is not None and usage.prompt_tokens is not None
    assert counted - usage.prompt_tokens > len(junk) * 2 // 7 + 4  # more than the estimate


async def test_concurrent_requests_share_batches(engine: LocalEngine) -> None:
    with gate(engine) as opened:
        tasks = [asyncio.create_task(answer(engine)) for _ in range(6)]
        await until(lambda: engine.stats.submitted == 6)  # all queued while the model is held
        assert engine.pending == 6
        opened.set()
        answers = await asyncio.gather(*tasks)
    assert answers == [ANSWER] * 6
    assert engine.stats.peak_batch >= 2
    assert engine.pending == 0 and engine.stats.generating == 0


async def test_many_streams_are_woken_every_few_tokens_and_lose_none(engine: LocalEngine) -> None:
    async def chunks() -> list[str]:
        async with asyncio.timeout(LIMIT):
            return [delta async for delta in engine.stream(request())]

    alone = await chunks()
    with gate(engine) as opened:
        tasks = [asyncio.create_task(chunks()) for _ in range(24)]
        await until(lambda: engine.stats.submitted == 25)
        opened.set()
        together = await asyncio.gather(*tasks)
    assert all("".join(streamed) == ANSWER for streamed in together)
    assert all(3 <= len(streamed) < len(alone) for streamed in together)  # fewer, larger deltas


async def test_the_event_loop_runs_while_the_model_works(engine: LocalEngine) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    with gate(engine) as opened:
        job = asyncio.create_task(answer(engine))
        await until(lambda: engine.stats.submitted == 1)
        before = ticks
        await until(lambda: ticks >= before + 20)  # the forward pass is stuck in its thread
        assert not job.done()
        opened.set()
        assert await job == ANSWER
    ticking.cancel()


async def test_a_failing_forward_pass_reaches_the_caller_and_the_engine_recovers(
    engine: LocalEngine,
) -> None:
    def boom(module: Any, args: Any) -> None:
        raise RuntimeError("boom in the forward pass")

    hook = engine.hf_model.register_forward_pre_hook(boom)
    try:
        with pytest.raises(EngineUnavailable, match="failed while answering"):
            await answer(engine)
    finally:
        hook.remove()
    assert await answer(engine) == ANSWER
    assert engine.stats.starts == 2


async def test_a_prompt_that_cannot_be_built_is_an_engine_error(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reject(messages: Sequence[ChatMessage]) -> str:
        raise ValueError("System role not supported")  # what some chat templates raise

    monkeypatch.setattr(engine, "format_prompt", reject)
    with pytest.raises(EngineUnavailable, match="prompt for tiny: System role not supported"):
        await answer(engine)
    assert engine.pending == 0


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_giving_up_stops_the_generation(engine: LocalEngine, how: str) -> None:
    engine.eos_token_ids = ()  # never stops by itself
    usage = Usage()
    stream = cast(AsyncGenerator[str], engine.stream(request(max_tokens=1500), usage))
    if how == "aclose":
        async with asyncio.timeout(LIMIT):
            await anext(stream)
        await stream.aclose()
    else:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.create_task(consume())
        async with asyncio.timeout(LIMIT):
            await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    seen = usage.completion_tokens or 0
    assert 0 < seen < 1500
    # Another request runs 200 steps; had the first kept going, it would have grown with it.
    await answer(engine, request(max_tokens=200))
    assert engine.stats.tokens < seen + 200 + 20
    assert engine.stats.generating == 0 and engine.pending == 0


async def test_closing_the_engine_ends_the_requests_in_flight(tiny_model_path: Path) -> None:
    engine = LocalEngine(spec_for(tiny_model_path))
    await engine.start()
    engine.eos_token_ids = ()  # never stops by itself
    stream = cast(AsyncGenerator[str], engine.stream(request(max_tokens=1500)))
    async with asyncio.timeout(LIMIT):
        await anext(stream)
        closing = asyncio.create_task(engine.aclose())
        with pytest.raises(EngineUnavailable, match="is shutting down"):
            async for _ in stream:
                pass
        await closing
    assert str(engine.readiness) == "failed: the engine was closed"


async def test_a_generation_thread_gone_silent_fails_its_requests(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = LocalEngine(spec_for(tiny_model_path), poll_interval=0.05)
    await engine.start()
    try:
        with gate(engine):
            job = asyncio.create_task(answer(engine))
            await until(lambda: engine.stats.submitted == 1)
            # as if the thread had died without failing its requests (the manager fails them
            # itself when it crashes; the watchdog is the net under that)
            monkeypatch.setattr(Batcher, "running", property(lambda self: False))
            with pytest.raises(EngineUnavailable, match="stopped generating unexpectedly"):
                await job
            monkeypatch.undo()
        assert engine.pending == 0 and engine.stats.generating == 0
        assert await answer(engine) == ANSWER
    finally:
        await engine.aclose()


async def test_requests_wait_while_loading_and_the_queue_is_bounded(
    tiny_model_path: Path,
) -> None:
    engine = LocalEngine(spec_for(tiny_model_path), max_batch=1, max_queue=1)
    try:
        waiting = [asyncio.create_task(answer(engine)) for _ in range(2)]
        await until(lambda: engine.pending == 2)
        assert engine.readiness.state == "loading"
        with pytest.raises(EngineBusy, match=r"busy .* try again in a moment"):
            await answer(engine)
        await engine.start()
        assert await asyncio.gather(*waiting) == [ANSWER, ANSWER]
        assert engine.pending == 0
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/no/such/model", "no model folder at /no/such/model: check the path"),
        ("nobody/no-such-model", "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"),
    ],
)
async def test_a_missing_model_is_reported(target: str, expected: str) -> None:
    engine = LocalEngine(spec_for(target))
    await engine.start()
    assert engine.readiness.state == "failed"
    assert expected in str(engine.readiness)
    with pytest.raises(EngineNotReady, match="could not be loaded"):
        await answer(engine)
    await engine.aclose()


async def test_a_broken_model_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    engine = LocalEngine(spec_for(tmp_path))
    await engine.start()
    assert str(engine.readiness).startswith(f"failed: could not load {tmp_path}")


async def test_quantization_without_bitsandbytes_names_the_fix(tiny_model_path: Path) -> None:
    pytest.importorskip("accelerate")
    if __import__("importlib").util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed")
    engine = LocalEngine(spec_for(tiny_model_path, quantization="4bit"))
    await engine.start()
    assert "pip install bitsandbytes" in str(engine.readiness)
