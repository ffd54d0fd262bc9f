"""Shared fixtures. No test reaches the network: real components run on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.fakes.openai_server import OpenAIServer
from tests.postgres import find_bin, postgres_server

_schemas = itertools.count(1)

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


# -- PostgreSQL: a real server, one per test session (tests/postgres.py) ------------------------


def with_schema(dsn: str, schema: str) -> str:
    """``dsn`` whose connections look in ``schema`` first (and create their tables there)."""
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("search_path", f"{schema},public")]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The URL of the server's database (its ``public`` schema holds only pg_trgm)."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql package) are installed")
    with postgres_server(bin_dir) as dsn:

        async def install_trigrams() -> None:
            import asyncpg

            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            finally:
                await conn.close()

        asyncio.run(install_trigrams())
        yield dsn


@pytest.fixture
async def postgres_db(postgres_dsn: str) -> AsyncIterator[str]:
    """The URL of a fresh, blank schema of this test's own."""
    import asyncpg

    schema = f"t_{next(_schemas)}"  # SQL identifiers take no parameters: a name we made
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield with_schema(postgres_dsn, schema)
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()
