"""A surface that tells a durable job which message its answer is in.

The presenter posts one live message per turn and edits it to the end; when the process dies
in between, the next attempt at the job (:mod:`bot.jobs`) must find that message to say so in
it. :class:`Journaled` wraps the job's surface: the first message it posts, or streams, is
recorded (``record``, with the handle made JSON by ``encode``) before the presenter goes on.
Everything else is the wrapped surface's, capabilities included (a wrapped surface that
streams still streams: attribute lookups fall through).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic

from bot.present.surface import Handle, Surface
from bot.present.views import View

__all__ = ["Journaled"]


class Journaled(Generic[Handle]):
    #: the presenter says an interrupted answer will come again (the job is taken over)
    durable = True

    def __init__(
        self,
        surface: Surface[Handle],
        record: Callable[[Any], Awaitable[None]],
        encode: Callable[[Handle], Any],
    ) -> None:
        self._surface = surface
        self._record = record
        self._encode = encode
        self._recorded = False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._surface, name)  # AttributeError: not the wrapped one's either
        if name == "stream":  # only a surface that streams has it (the presenter checks)
            return self._stream
        return found

    async def _first(self, handle: Handle) -> None:
        if not self._recorded:
            self._recorded = True
            await self._record(self._encode(handle))

    async def post(self, view: View) -> Handle:
        handle = await self._surface.post(view)
        await self._first(handle)
        return handle

    async def _stream(self) -> Any:
        started = await self._surface.stream()  # type: ignore[attr-defined]
        message = getattr(started, "message", None)
        if message is not None:
            await self._first(message)
        return started
