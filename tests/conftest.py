"""Shared fixtures. No test reaches the network: real components run on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import OpenAIServer

#: a loopback address nothing listens on (port 9 is "discard"; binding it needs root)
CLOSED_BASE_URL = "http://127.0.0.1:9/v1"


@pytest.fixture(autouse=True)
def _offline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the OpenAI SDK at a closed loopback port and drop every real credential/proxy."""
    monkeypatch.setenv("OPENAI_BASE_URL", CLOSED_BASE_URL)
    for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIServer]:
    """A started loopback OpenAI-compatible server; answers with ``code_reply`` by default.

    Script it with ``openai_server.script([ScriptedReply(...), "text", ...])`` or set
    ``openai_server.handler``; read what it received from ``openai_server.requests``.
    """
    async with OpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let transformers or huggingface_hub reach the hub (HF_HUB_OFFLINE=1)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained chat model on disk (tests/fakes/tiny_model.py), built once per test run.

    Greedy decoding answers every prompt with ``tests.fakes.tiny_model.ANSWER``. Skips the test
    when the ``local`` extra (torch, transformers) is not installed. Sets torch to one intra-op
    thread for the session: the tiny model gains nothing from more, and OpenMP threads spin
    (tens of times slower) when other processes share the cores.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.fakes.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")
