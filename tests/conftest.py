"""Shared fixtures. No test reaches the network: real components run on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
