"""The loopback server itself: the parts the engine tests do not reach."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import openai

from engines import ChatMessage, GenerationRequest, ModelSpec
from engines.openai_compat import OpenAIEngine
from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply

ROOT = Path(__file__).resolve().parents[2]


async def test_non_streaming_completion_and_models(openai_server: OpenAIServer) -> None:
    openai_server.script([ScriptedReply(text="plain answer")])
    async with openai.AsyncOpenAI(api_key="k", base_url=openai_server.base_url) as client:
        completion = await client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "two words"}]
        )
        models = await client.models.list()
    assert completion.choices[0].message.content == "plain answer"
    assert completion.usage is not None and completion.usage.prompt_tokens == 2
    assert [m.id for m in models.data] == ["test-model"]
    assert [r.path for r in openai_server.requests] == ["/v1/chat/completions", "/v1/models"]


def test_code_reply_builds_on_the_previous_version() -> None:
    first = code_reply({"messages": [{"role": "user", "content": "print a `greeting`"}]}).text
    assert "# fake-model version 1\n# request: print a 'greeting'\n# messages: 1\n" in first
    assert "built on" not in first

    feedback = f"Current code:\n{first}\nFeedback: shout it"
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": feedback}]
    second = code_reply({"messages": messages}).text
    assert "# fake-model version 2\n" in second
    assert "# request: Current code: Here is version 1. Feedback: shout it\n" in second
    assert "# messages: 2\n# built on version 1\n" in second
    assert second.count("```") == 2

    # The bot's way: the earlier answer replayed as an assistant message.
    replay = [
        {"role": "user", "content": "print a greeting"},
        {"role": "assistant", "content": second},
        {"role": "user", "content": "now in French"},
    ]
    third = code_reply({"messages": replay}).text
    assert "# fake-model version 3\n# request: now in French\n# messages: 3\n" in third
    assert "# built on version 2\n" in third


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
    return process, line.decode().strip()


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    assert await asyncio.wait_for(process.wait(), timeout=10) == 0


async def _ask(base_url: str, text: str) -> str:
    engine = OpenAIEngine(ModelSpec(name="t", ref="openai:test-model"), base_url=base_url)
    request = GenerationRequest(messages=(ChatMessage(role="user", content=text),))
    try:
        return "".join([delta async for delta in engine.stream(request)])
    finally:
        await engine.aclose()


async def test_standalone_code_mode() -> None:
    process, base_url = await _start("--mode", "code")
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert "# request: hello there" in await _ask(base_url, "hello there")
    finally:
        await _stop(process)


async def test_standalone_script_and_record(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["first", {"text": "second", "chunks": ["sec", "ond"]}]))
    record = tmp_path / "requests.jsonl"
    process, base_url = await _start("--script", str(script), "--record", str(record))
    try:
        assert await _ask(base_url, "a") == "first"
        assert await _ask(base_url, "b") == "second"
    finally:
        await _stop(process)
    bodies = [json.loads(line) for line in record.read_text().splitlines()]
    assert [b["messages"][-1]["content"] for b in bodies] == ["a", "b"]
