from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from engines import (
    ChatMessage,
    EngineError,
    EngineNotReady,
    EngineRateLimited,
    EngineTimeout,
    EngineUnavailable,
    GenerationRequest,
    ModelSpec,
    Usage,
)
from engines.openai_compat import OpenAIEngine
from tests.fakes.openai_server import OpenAIServer, ScriptedReply

KEY = "sk-test-0123456789abcdef"
SPEC = ModelSpec(name="test", ref="openai:test-model")
REQUEST = GenerationRequest(
    messages=(
        ChatMessage(role="system", content="You write code."),
        ChatMessage(role="user", content="print hello"),
    ),
    temperature=0.1,
    max_tokens=300,
)

MakeEngine = Callable[..., Awaitable[OpenAIEngine]]


@pytest.fixture
async def make_engine(openai_server: OpenAIServer) -> AsyncIterator[MakeEngine]:
    """Started engines pointed at the loopback server; all closed at the end."""
    engines: list[OpenAIEngine] = []

    async def make(spec: ModelSpec = SPEC, **options: Any) -> OpenAIEngine:
        options = {"base_url": openai_server.base_url, "api_key": KEY, **options}
        engine = OpenAIEngine(spec, **options)
        engines.append(engine)
        await engine.start()
        return engine

    yield make
    for engine in engines:
        await engine.aclose()


async def collect(engine: OpenAIEngine, usage: Usage | None = None) -> list[str]:
    return [delta async for delta in engine.stream(REQUEST, usage)]


async def test_streams_deltas_in_order_and_fills_usage(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script([ScriptedReply(chunks=["def ", "f():", "\n    ", "", "return 1"])])
    engine = await make_engine()
    usage = Usage()

    assert await collect(engine, usage) == ["def ", "f():", "\n    ", "return 1"]
    assert usage == Usage(prompt_tokens=5, completion_tokens=5)
    assert str(engine.readiness) == "ready"


async def test_request_carries_model_messages_sampling_and_key(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok"])
    await collect(await make_engine())

    [received] = openai_server.requests
    assert received.path == "/v1/chat/completions"
    assert received.authorization == f"Bearer {KEY}"
    assert received.body["model"] == "test-model"
    assert received.body["messages"] == [
        {"role": "system", "content": "You write code."},
        {"role": "user", "content": "print hello"},
    ]
    assert received.body["temperature"] == 0.1
    assert received.body["max_tokens"] == 300
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}


async def test_max_tokens_is_capped_by_the_spec(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok"])
    spec = ModelSpec(name="small", ref="openai:test-model", max_new_tokens=100)
    await collect(await make_engine(spec))
    assert openai_server.requests[0].body["max_tokens"] == 100


async def test_code_reply_round_trip(make_engine: MakeEngine) -> None:
    text = "".join(await collect(await make_engine()))
    assert "```python\n# fake-model version 1\n# request: print hello\n# messages: 2\n" in text


async def test_429_then_200_succeeds_through_sdk_retry(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(
        [ScriptedReply(status=429, headers={"retry-after-ms": "10"}), ScriptedReply(text="done")]
    )
    assert "".join(await collect(await make_engine(max_retries=2))) == "done"
    assert len(openai_server.requests) == 2


async def test_429_every_time_is_rate_limited(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    limited = ScriptedReply(
        status=429, error_message="You exceeded your quota.", headers={"retry-after-ms": "10"}
    )
    openai_server.script([limited] * 3)
    with pytest.raises(EngineRateLimited, match=r"\(HTTP 429\): You exceeded your quota"):
        await collect(await make_engine(max_retries=2))
    assert len(openai_server.requests) == 3


async def test_500_is_unavailable_with_status_and_short_message(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script([ScriptedReply(status=500, error_message="out of memory " * 50)])
    with pytest.raises(EngineUnavailable, match="HTTP 500: out of memory") as caught:
        await collect(await make_engine(max_retries=0))
    assert len(str(caught.value)) < 300


async def test_404_names_the_model(openai_server: OpenAIServer, make_engine: MakeEngine) -> None:
    openai_server.script([ScriptedReply(status=404, error_message="model not found")])
    with pytest.raises(EngineUnavailable, match="'test-model'"):
        await collect(await make_engine())


async def test_401_names_the_key_variable_and_never_the_key(
    openai_server: OpenAIServer, make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's own debug lines included
    echo = f"Incorrect API key provided: {KEY}"
    openai_server.script([ScriptedReply(status=401, error_message=echo)])
    engine = await make_engine()
    with pytest.raises(EngineUnavailable) as caught:
        await collect(engine)

    error = caught.value
    assert "OPENAI_API_KEY" in str(error) and "HTTP 401" in str(error)
    seen = [str(error), repr(error), repr(engine), caplog.text, str(error.__cause__)]
    assert not any(KEY in text for text in seen)


async def test_a_spec_key_variable_is_used_and_named(
    openai_server: OpenAIServer, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak-to-other-hosts")
    monkeypatch.setenv("OTHER_KEY", "other-secret")
    spec = ModelSpec(name="other", ref="openai:test-model", api_key_env="OTHER_KEY")
    openai_server.script([ScriptedReply(status=403)])
    with pytest.raises(EngineUnavailable, match="Check OTHER_KEY"):
        await collect(await make_engine(spec, api_key=None))
    assert openai_server.requests[0].authorization == "Bearer other-secret"


async def test_a_missing_spec_key_variable_fails_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-host")
    spec = ModelSpec(name="groq", ref="openai:llama", api_key_env="GROQ_API_KEY")
    engine = OpenAIEngine(spec, base_url="http://127.0.0.1:9/v1")
    await engine.start()
    assert str(engine.readiness) == "failed: GROQ_API_KEY is not set"
    with pytest.raises(EngineNotReady, match="GROQ_API_KEY"):
        await collect(engine)


async def test_malformed_stream_is_unavailable(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script([ScriptedReply(raw_body="data: {not json\n\n")])
    with pytest.raises(EngineUnavailable, match="could not be read"):
        await collect(await make_engine())


async def test_timeout(openai_server: OpenAIServer, make_engine: MakeEngine) -> None:
    openai_server.script([ScriptedReply(text="late", delay_before=2.0)])
    engine = await make_engine(timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(EngineTimeout, match=r"within 0\.3 s"):
        await collect(engine)
    assert time.monotonic() - started < 1.5


async def test_stall_mid_stream_is_a_timeout(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script([ScriptedReply(chunks=["a", "b"], delay_between=2.0)])
    engine = await make_engine(timeout=0.3, max_retries=0)
    received: list[str] = []
    with pytest.raises(EngineTimeout):
        async for delta in engine.stream(REQUEST):
            received.append(delta)
    assert received == ["a"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_names_the_host(make_engine: MakeEngine) -> None:
    port = _closed_port()
    engine = await make_engine(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(EngineUnavailable, match=f"127.0.0.1:{port}"):
        await collect(engine)


async def test_stream_dropped_midway(openai_server: OpenAIServer, make_engine: MakeEngine) -> None:
    openai_server.script([ScriptedReply(chunks=["one", "two", "three"], drop_after=2)])
    engine = await make_engine(max_retries=0)
    received: list[str] = []
    with pytest.raises(EngineError, match="broke off"):
        async for delta in engine.stream(REQUEST):
            received.append(delta)
    assert received == ["one", "two"]


async def test_error_event_inside_the_stream(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    # vLLM and others report a failure after the 200 headers as an SSE error event.
    openai_server.script([ScriptedReply(chunks=["x"], error_message="model crashed")])
    with pytest.raises(EngineUnavailable, match="reported an error: model crashed"):
        await collect(await make_engine())


async def test_missing_key_without_base_url_fails_readiness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    engine = OpenAIEngine(SPEC)
    await engine.start()
    assert engine.readiness.state == "failed"
    assert "OPENAI_API_KEY is not set" in str(engine.readiness)
    with pytest.raises(EngineNotReady, match="OPENAI_BASE_URL for a local server"):
        await collect(engine)
    await engine.aclose()


async def test_custom_base_url_without_key_sends_a_placeholder(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok"])
    await collect(await make_engine(api_key=None))
    assert openai_server.requests[0].authorization == "Bearer not-needed"


async def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1111/v1")
    from_spec = ModelSpec(name="s", ref="openai:m", base_url="http://127.0.0.1:3333/v1")
    assert OpenAIEngine(SPEC).host == "127.0.0.1:1111"
    assert OpenAIEngine(SPEC, base_url="http://127.0.0.1:2222/v1").host == "127.0.0.1:2222"
    assert OpenAIEngine(from_spec, base_url="http://127.0.0.1:2222/v1").host == "127.0.0.1:3333"


async def test_a_bad_base_url_fails_readiness() -> None:
    spec = ModelSpec(name="s", ref="openai:m", base_url="localhost:8000")
    engine = OpenAIEngine(spec, api_key=KEY)
    await engine.start()
    assert engine.readiness.state == "failed"
    assert "http://" in engine.readiness.detail


# -- per-model request parameters ------------------------------------------------------------

REASONING = ModelSpec(
    name="thinker",
    ref="openai:test-model",
    max_new_tokens=1000,
    token_limit_param="max_completion_tokens",
    temperature=False,
    reasoning_effort="low",
    extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
)
HINTS = GenerationRequest(
    messages=REQUEST.messages,
    max_tokens=300,
    prediction="print('hello')",
    cache_key="codethread-7",
    user="5f" * 32,
)
HINT_FIELDS = ("prediction", "prompt_cache_key", "safety_identifier", "reasoning_effort")


async def test_a_plain_spec_sends_max_tokens_and_a_temperature_and_no_hints(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok"])
    engine = await make_engine()
    assert [d async for d in engine.stream(HINTS)] == ["ok"]
    body = openai_server.requests[0].body
    assert (body["max_tokens"], body["temperature"]) == (300, 0.2)
    assert "max_completion_tokens" not in body
    assert not set(HINT_FIELDS) & set(body)  # not OpenAI's API, and the spec did not ask


async def test_a_reasoning_model_gets_max_completion_tokens_no_temperature_and_an_effort(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok"])
    await collect(await make_engine(REASONING))
    body = openai_server.requests[0].body
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body
    assert body["reasoning_effort"] == "low"
    # extra_body is merged into the request as it is, next to what the engine sends
    assert body["top_k"] == 20 and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["stream"] is True and body["model"] == "test-model"


async def test_hints_go_where_the_spec_turns_them_on(
    openai_server: OpenAIServer, make_engine: MakeEngine
) -> None:
    openai_server.script(["ok", "ok"])
    spec = ModelSpec(
        name="own",
        ref="openai:test-model",
        predicted_outputs=True,
        prompt_cache_key=True,
        safety_identifier=True,
    )
    engine = await make_engine(spec)
    await anext(engine.stream(HINTS))
    body = openai_server.requests[0].body
    assert body["prediction"] == {"type": "content", "content": "print('hello')"}
    assert body["prompt_cache_key"] == "codethread-7"
    assert body["safety_identifier"] == "5f" * 32
    await collect(engine)  # a request without hints sends none
    assert not set(HINT_FIELDS) & set(openai_server.requests[1].body)


async def test_openai_s_own_api_gets_cache_key_and_safety_identifier_unasked(
    openai_server: OpenAIServer, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIEngine(SPEC, api_key=KEY).openai_hosted
    assert OpenAIEngine(SPEC, base_url="https://api.openai.com/v1", api_key=KEY).openai_hosted
    assert not OpenAIEngine(SPEC, base_url=openai_server.base_url).openai_hosted
    openai_server.script(["ok", "ok"])
    # the loopback server stands in for api.openai.com (tests never leave this machine)
    engine = await make_engine()
    engine.openai_hosted = True
    await anext(engine.stream(HINTS))
    body = openai_server.requests[0].body
    assert (body["prompt_cache_key"], body["safety_identifier"]) == ("codethread-7", "5f" * 32)
    assert "prediction" not in body  # only for models that have Predicted Outputs
    refused = ModelSpec(name="no", ref="openai:test-model", safety_identifier=False)
    engine = await make_engine(refused)
    engine.openai_hosted = True
    await anext(engine.stream(HINTS))
    assert "safety_identifier" not in openai_server.requests[1].body
    assert openai_server.requests[1].body["prompt_cache_key"] == "codethread-7"


# -- credentials in URLs never reach the log ---------------------------------------------------


async def test_credentials_in_the_base_url_are_not_logged_at_any_level(
    openai_server: OpenAIServer, make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = openai_server.base_url.replace("http://", "http://someone:hunter2-pass@")
    secret_url += "?api-key=sk-in-the-query-0042"
    openai_server.script(["ok", ScriptedReply(status=400, error_message="broken")])
    caplog.set_level(logging.DEBUG)
    for name in ("httpx2", "httpcore2", "openai", "engines"):
        caplog.set_level(logging.DEBUG, logger=name)

    engine = await make_engine(base_url=secret_url)
    assert await collect(engine) == ["ok"]
    with pytest.raises(EngineUnavailable):
        await collect(engine)

    first, _ = openai_server.requests  # the URL works: path and query as meant
    assert first.path == "/v1/chat/completions"
    assert first.query == {"api-key": "sk-in-the-query-0042"}
    assert "HTTP Request: POST http://***@127.0.0.1" in caplog.text  # scrubbed, not dropped
    for secret in ("hunter2-pass", "someone", "sk-in-the-query-0042", KEY):
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()


async def test_a_probe_says_ready_unreachable_or_unauthorized(
    openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ModelSpec(name="m", ref="openai:test-model", base_url=openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    engine = OpenAIEngine(spec)
    await engine.start()
    assert str(await engine.probe()) == "ready"
    assert await engine.server_models() == ["test-model"]
    assert openai_server.requests[-1].path == "/v1/models"

    openai_server.api_key = "sk-other"
    readiness = await engine.probe()
    assert readiness.state == "failed" and readiness.detail.startswith("unauthorized")
    assert "OPENAI_API_KEY" in readiness.detail and "sk-right" not in readiness.detail
    await engine.aclose()

    closed = OpenAIEngine(ModelSpec(name="m", ref="openai:x", base_url="http://127.0.0.1:9/v1"))
    await closed.start()
    readiness = await closed.probe()
    assert readiness.state == "failed" and readiness.detail.startswith("unreachable")
    with pytest.raises(EngineError, match="Could not connect"):
        await closed.server_models()
    await closed.aclose()
