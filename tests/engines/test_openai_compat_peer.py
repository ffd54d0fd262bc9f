"""The OpenAI-compatible engine against a server nobody here wrote: ``transformers serve``.

The server (extra ``transformers[serving]``: FastAPI + uvicorn) runs the tiny trained model on
127.0.0.1 in a subprocess; the test skips when those packages are not installed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from engines import ChatMessage, GenerationRequest, ModelSpec, Usage
from engines.openai_compat import OpenAIEngine
from tests.fakes.tiny_model import ANSWER

STARTUP_LIMIT = 60.0
SERVE = "import sys; from transformers.cli.transformers import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def serve(tiny_model_path: Path) -> AsyncIterator[str]:
    """``transformers serve`` on the tiny model; yields its base URL (``.../v1``)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE, "serve", str(tiny_model_path),
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(STARTUP_LIMIT):
            while True:
                if process.returncode is not None:
                    assert process.stderr is not None
                    pytest.fail(f"transformers serve exited: {(await process.stderr.read())!r}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_streams_the_tiny_models_answer_from_transformers_serve(
    serve: str, tiny_model_path: Path
) -> None:
    engine = OpenAIEngine(
        ModelSpec(name="peer", ref=f"openai:{tiny_model_path}", base_url=serve, max_new_tokens=100)
    )
    await engine.start()
    request = GenerationRequest(
        messages=(
            ChatMessage(role="system", content="You write code."),
            ChatMessage(role="user", content="write a greeting function"),
        ),
        temperature=0.0,
    )
    usage = Usage()
    try:
        async with asyncio.timeout(STARTUP_LIMIT):
            chunks = [delta async for delta in engine.stream(request, usage)]
    finally:
        await engine.aclose()
    assert "".join(chunks) == ANSWER
    assert len(chunks) >= 5
