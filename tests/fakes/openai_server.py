"""A loopback OpenAI-compatible server for tests: scripted replies, real HTTP and SSE.

In a test::

    async with OpenAIServer([ScriptedReply(text="hello")]) as server:
        engine = OpenAIEngine(spec, base_url=server.base_url)
        ...
        assert server.requests[0].body["model"] == "test-model"

The handler is a plain function ``(body) -> ScriptedReply``, or a list of replies served in
order (a plain string is a reply with that text). Without one, :func:`code_reply` answers.

Standalone, for subprocess tests (run from the repository root)::

    python -m tests.fakes.openai_server --port 0 --script replies.json [--record requests.jsonl]
    python -m tests.fakes.openai_server --port 0 --mode code

The first stdout line is the base URL (``http://127.0.0.1:PORT/v1``); SIGTERM or SIGINT stops
it. A script file holds a JSON list of replies: strings or objects with ScriptedReply's fields.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["Handler", "OpenAIServer", "RecordedRequest", "ScriptedReply", "code_reply"]


@dataclass(slots=True, kw_only=True)
class ScriptedReply:
    """What the server answers to one chat-completions request."""

    text: str = ""
    #: the streamed deltas; by default ``text`` in pieces of 8 characters
    chunks: list[str] | None = None
    #: anything but 200 answers ``{"error": {"message": error_message, ...}}``; a 200 stream
    #: with an ``error_message`` sends it as an error event after the chunks (as vLLM does)
    status: int = 200
    error_message: str | None = None
    #: seconds before the response starts, and between streamed chunks
    delay_before: float = 0.0
    delay_between: float = 0.0
    #: extra response headers, e.g. ``{"retry-after-ms": "10"}``
    headers: dict[str, str] = field(default_factory=dict)
    #: when streaming, cut the connection after this many content chunks
    drop_after: int | None = None
    #: sent verbatim as the body instead of anything above (for malformed answers)
    raw_body: str | None = None

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return [self.text[i : i + 8] for i in range(0, len(self.text), 8)]

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> ScriptedReply:
        if isinstance(data, str):
            return cls(text=data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ScriptedReply keys: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    body: dict[str, Any]
    #: the ``Authorization`` header as sent, e.g. ``"Bearer sk-..."``
    authorization: str | None
    #: the query string's parameters (e.g. a gateway's ``api-key``)
    query: dict[str, str] = field(default_factory=dict)


Handler = Callable[[dict[str, Any]], ScriptedReply]


class OpenAIServer:
    """``POST /v1/chat/completions`` (streaming or not) and ``GET /v1/models`` on 127.0.0.1."""

    def __init__(
        self,
        handler: Handler | Iterable[ScriptedReply | str] | None = None,
        *,
        port: int = 0,
        models: Iterable[str] = ("test-model",),
        api_key: str | None = None,
    ) -> None:
        self.handler: Handler = code_reply
        #: when set, ``GET /v1/models`` answers 401 to any other bearer token
        self.api_key = api_key
        if callable(handler):
            self.handler = handler
        elif handler is not None:
            self.script(handler)
        self.port = port
        self.models = list(models)
        self.requests: list[RecordedRequest] = []
        #: exceptions raised by the handler (each answered with HTTP 500)
        self.errors: list[Exception] = []
        self._runner: web.AppRunner | None = None

    def script(self, replies: Iterable[ScriptedReply | str]) -> None:
        """Answer the next requests with ``replies``, in order; then HTTP 500."""
        queue = [r if isinstance(r, ScriptedReply) else ScriptedReply(text=r) for r in replies]
        queue.reverse()

        def next_reply(body: dict[str, Any]) -> ScriptedReply:
            if not queue:
                return ScriptedReply(status=500, error_message="the fake server's script ran out")
            return queue.pop()

        self.handler = next_reply

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # Cancel handlers whose client went away, and do not wait for them on close.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> OpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, {})
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        try:
            reply = self.handler(body)
        except Exception as exc:
            self.errors.append(exc)
            reply = ScriptedReply(status=500, error_message=f"handler failed: {exc!r}")
        if reply.delay_before:
            await asyncio.sleep(reply.delay_before)
        if reply.raw_body is not None:
            headers = {"Content-Type": "text/event-stream", **reply.headers}
            return web.Response(text=reply.raw_body, status=reply.status, headers=headers)
        if reply.status != 200:
            error = {"message": reply.error_message or f"HTTP {reply.status}", "type": "test"}
            return web.json_response({"error": error}, status=reply.status, headers=reply.headers)
        model = body.get("model", "")
        pieces = reply.pieces()
        usage = _usage(body, pieces)
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            completion = _envelope("chat.completion", model, choices=[choice], usage=usage)
            return web.json_response(completion, headers=reply.headers)
        return await self._stream(request, body, reply, pieces, usage)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        reply: ScriptedReply,
        pieces: list[str],
        usage: dict[str, int],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        model = body.get("model", "")

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = _envelope("chat.completion.chunk", model, choices=choices, **extra)
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send([_delta({"role": "assistant", "content": ""})])
        for sent, piece in enumerate(pieces):
            if reply.drop_after is not None and sent >= reply.drop_after:
                _cut(request)
                return response
            if reply.delay_between and sent:
                await asyncio.sleep(reply.delay_between)
            await send([_delta({"content": piece})])
        if reply.drop_after is not None:
            _cut(request)
            return response
        if reply.error_message:
            error = {"message": reply.error_message, "type": "test"}
            await response.write(f"data: {json.dumps({'error': error})}\n\n".encode())
            await response.write_eof()
            return response
        await send([_delta({}, finish_reason="stop")])
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _record(self, request: web.Request, body: dict[str, Any]) -> None:
        auth = request.headers.get("Authorization")
        query = dict(request.query)
        self.requests.append(
            RecordedRequest(path=request.path, body=body, authorization=auth, query=query)
        )


def _cut(request: web.Request) -> None:
    """Close the connection mid-body, as a crashed server or a broken proxy would."""
    if request.transport is not None:
        request.transport.abort()


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}


def _envelope(kind: str, model: str, **rest: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        **rest,
    }


def _usage(body: dict[str, Any], pieces: list[str]) -> dict[str, int]:
    """Rough counts: words in the messages, chunks in the answer."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }


# --- the built-in "code" model -----------------------------------------------------------------

_VERSION_LINE = re.compile(r"# fake-model version (\d+)")
_FENCED = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def code_reply(body: dict[str, Any]) -> ScriptedReply:
    """A fenced python block derived from the request, so tests can check real round trips.

    The code quotes the last user message (code blocks left out) and counts the messages. Its
    first line is ``# fake-model version N``: one more than the highest version found in the
    conversation (an earlier answer replayed as an assistant message, or code pasted in a user
    message), and then a ``# built on version M`` line says which one it was built from.
    """
    messages = body.get("messages") or []
    last_user = next(
        (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    earlier = [
        int(n)
        for m in messages
        if m.get("role") != "system"
        for n in _VERSION_LINE.findall(str(m.get("content", "")))
    ]
    version = max(earlier) + 1 if earlier else 1
    request = " ".join(_FENCED.sub(" ", last_user).replace("`", "'").split())[:80]
    lines = [
        f"# fake-model version {version}",
        f"# request: {request}",
        f"# messages: {len(messages)}",
    ]
    if earlier:
        lines.append(f"# built on version {max(earlier)}")
    lines.append(f"print({request!r})")
    code = "\n".join(lines)
    return ScriptedReply(text=f"Here is version {version}.\n\n```python\n{code}\n```\n")


# --- standalone ----------------------------------------------------------------------------------


def _script_file(path: str) -> list[ScriptedReply]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise SystemExit(f"{path}: expected a JSON list of replies")
    return [ScriptedReply.from_json(item) for item in data]


async def _serve(args: argparse.Namespace) -> None:
    replies = _script_file(args.script) if args.script else None
    async with OpenAIServer(replies, port=args.port) as server:
        if args.record:
            _record_to(server, Path(args.record))
        print(server.base_url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def _record_to(server: OpenAIServer, path: Path) -> None:
    """Also append each chat request body to ``path`` as one JSON line."""
    inner = server.handler

    def recording(body: dict[str, Any]) -> ScriptedReply:
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(body) + "\n")
        return inner(body)

    server.handler = recording


async def _amain(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--script", metavar="FILE", help="JSON list of replies, served in order")
    mode.add_argument("--mode", choices=["code"], help="built-in handler")
    parser.add_argument("--record", metavar="FILE", help="append request bodies as JSON lines")
    await _serve(parser.parse_args(argv))


if __name__ == "__main__":
    asyncio.run(_amain())
