"""A fake engine that wraps a plain function: for tests, benchmarks and offline demos.

``FakeEngine()`` is a deterministic echo: it answers with the last user message inside a fenced
```` ```text ```` block, so the bot's code extraction finds exactly one block. Pass a
``responder`` to script other answers, ``delay`` to simulate a slow model and ``fail`` to
simulate a failing one. It is registered as the ``fake`` scheme (``fake:echo``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from engines.base import Engine, GenerationRequest, Usage
from engines.errors import EngineError

__all__ = ["FakeEngine", "echo"]

Responder = Callable[[GenerationRequest], str]


def echo(request: GenerationRequest) -> str:
    """The default responder: the last user message in a fenced ``text`` block."""
    last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    return f"```text\n{last}\n```\n"


class FakeEngine(Engine):
    """Streams ``responder(request)`` in pieces of ``chunk_size`` characters.

    Timing: ``delay`` seconds in total, spread evenly as an ``asyncio.sleep`` before each chunk
    (an empty answer sleeps ``delay`` once), so one call takes about ``delay`` seconds however
    the text is split. ``fail`` is raised after ``fail_after`` chunks (default: before any).
    Each request is appended to :attr:`requests`. Usage is a rough count: words in the
    messages as prompt tokens, chunks as completion tokens.
    """

    scheme = "fake"

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        model: str = "echo",
        delay: float = 0.0,
        chunk_size: int = 16,
        fail: EngineError | None = None,
        fail_after: int = 0,
        context_window: int = 8192,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        super().__init__(model=model, context_window=context_window)
        self.responder: Responder = responder or echo
        self.delay = delay
        self.chunk_size = chunk_size
        self.fail = fail
        self.fail_after = fail_after
        #: every request received, oldest first
        self.requests: list[GenerationRequest] = []

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        self.requests.append(request)
        text = self.responder(request)
        chunks = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        usage.prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        usage.completion_tokens = 0
        pause = self.delay / max(len(chunks), 1)
        if not chunks and pause:
            await asyncio.sleep(pause)
        for index, chunk in enumerate(chunks):
            if self.fail is not None and index == self.fail_after:
                raise self.fail
            if pause:
                await asyncio.sleep(pause)
            usage.completion_tokens += 1
            yield chunk
        if self.fail is not None:
            raise self.fail
