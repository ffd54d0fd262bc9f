"""The surface the presenter shows an API turn on: every view becomes an event for the client.

An HTTP client has no thread to post in: what the presenter would post, edit or take back
becomes an :class:`Event` handed to a sink (a streamed response's queue), numbered by message
so that a client can keep its own copy of each message up to date. The answer streams
natively (:class:`~bot.present.surface.Streams`): each piece of the model's answer is one
``delta`` event instead of a whole message edited again and again, and the result ends it.

Problems the presenter tells the caller (a refusal, an error) are not events: the call's last
event says what went wrong (``event: error``), with the HTTP status a plain call would get.
Without a sink (a plain JSON call) nothing is kept: the call answers with the outcome alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.present.api import Json, view_json, view_kind
from bot.present.views import Closed, Notice, View
from storage import Session

__all__ = ["ApiStream", "ApiSurface", "Event", "Sink"]


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its name (a view's kind, ``delta``, ``remove``, ``done``,
    ``error``) and its JSON data."""

    kind: str
    data: Json


Sink = Callable[[Event], None]


class ApiSurface:
    """Views as events. ``limit`` is generous: a client renders markdown of any length."""

    limit = 100_000
    edit_interval = 0.1  # status lines only: the answer itself streams as deltas

    def __init__(self, sink: Sink | None = None) -> None:
        self.sink = sink
        #: the last problem the presenter told the caller (its first line), if any
        self.problem: str | None = None
        self._ids = itertools.count(1)

    def detach(self) -> None:
        """The client went away: drop what the rest of the turn shows."""
        self.sink = None

    def push(self, kind: str, data: Json) -> None:
        if self.sink is not None:
            self.sink(Event(kind, data))

    def _view(self, view: View, *, message: int, op: str) -> None:
        if self.sink is not None:  # the JSON is built only for someone who reads it
            self.sink(Event(view_kind(view), view_json(view, message=message, op=op)))

    def escape(self, text: str) -> str:
        return text

    async def post(self, view: View) -> int:
        handle = next(self._ids)
        self._view(view, message=handle, op="post")
        return handle

    async def edit(self, handle: int, view: View) -> None:
        self._view(view, message=handle, op="edit")

    async def remove(self, handle: int) -> None:
        self.push("remove", {"message": handle, "op": "remove"})

    async def tell(self, view: View) -> None:
        if isinstance(view, Notice) and view.problem:
            self.problem = view.text.split("\n", 1)[0]
            return
        self._view(view, message=0, op="tell")

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        return {session.id: f"/api/sessions/{session.id}" for session in sessions}

    def mention(self, user: str) -> str:
        return user

    async def close(self, session: Session, notice: Closed) -> None:
        self._view(notice, message=0, op="tell")

    async def stream(self) -> ApiStream:
        """A message the answer is appended to, piece by piece (``delta`` events)."""
        handle = next(self._ids)
        self.push("stream", {"message": handle, "op": "post"})
        return ApiStream(self, handle)


class ApiStream:
    """One streamed message: ``delta`` events, then the result as an edit of it."""

    def __init__(self, surface: ApiSurface, handle: int) -> None:
        self.surface = surface
        self.handle = handle

    def append(self, delta: str) -> None:
        self.surface.push("delta", {"message": self.handle, "delta": delta})

    async def stop(self, view: View) -> None:
        await self.surface.edit(self.handle, view)
