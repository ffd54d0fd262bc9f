"""Answering a turn over HTTP: once, as JSON, or as it happens, as server-sent events.

A create, turn or revert call hands the core's stream of events to the presenter, which shows
it on an :class:`~bot.api.surface.ApiSurface`; the outcome the presenter returns becomes the
answer (:func:`bot.present.api.answer`). With ``Accept: text/event-stream`` the views are
sent as they come (``event: <view kind>``, ``data: {json}``), and the last event is ``done``
(the object a plain call returns) or ``error`` (``{"error": …}``).

The turn runs in a task of its own, not in the request's handler: a client that hangs up
mid-answer (or a handler aiohttp cancels) leaves the turn to finish and store its version,
and the session stays usable. :class:`Turns` keeps those tasks, so that shutdown gives them a
moment to finish and then cancels them (the presenter and the core end a cancelled turn
cleanly: its place in line is freed).

Why a refused turn was refused (for its HTTP status) is learnt from the exception the core's
stream ended with, recorded on its way to the presenter (which tells it as words only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from bot.api.errors import describe, json_error
from bot.api.surface import ApiSurface, Event
from bot.present import Outcome, Presenter, words
from bot.present.api import Json, answer
from bot.values import Reply, RunReport

__all__ = ["Turn", "Turns", "respond", "wants_events"]

Stream = AsyncIterator[Reply | RunReport]

#: a comment line every so often keeps proxies from closing a quiet stream (a model loading)
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",  # the caller's code and output: for no cache to keep
    "X-Accel-Buffering": "no",  # nginx: pass events on at once
}


def wants_events(request: web.Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


@dataclass(eq=False)
class Turn:
    """A turn under way: the presenter's task, its surface, and the error the core's stream
    ended with (None when it ended normally)."""

    surface: ApiSurface
    session_id: str | None = None
    task: asyncio.Task[Outcome | None] = field(init=False)
    error: Exception | None = None

    async def watched(self, stream: Stream) -> AsyncIterator[Reply | RunReport]:
        """``stream`` as the presenter sees it, keeping the exception it ends with."""
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            try:
                async for event in events:
                    yield event
            except Exception as err:
                self.error = err
                raise


class Turns:
    """The API's turns in flight (so that shutdown can wait for them)."""

    def __init__(self, presenter: Presenter) -> None:
        self.presenter = presenter
        self._tasks: set[asyncio.Task[Outcome | None]] = set()

    def start(self, surface: ApiSurface, stream: Stream, session_id: str | None = None) -> Turn:
        turn = Turn(surface, session_id)
        turn.task = asyncio.create_task(self.presenter.show(surface, turn.watched(stream)))
        self._tasks.add(turn.task)
        turn.task.add_done_callback(self._tasks.discard)
        return turn

    async def aclose(self, drain: float = 5.0) -> None:
        """Let the turns in flight finish for up to ``drain`` seconds, then cancel the rest."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def _final(turn: Turn, status: int) -> tuple[int, Json, dict[str, str]]:
    """The answer of a finished turn: its HTTP status, body and headers."""
    if turn.task.cancelled():
        return 503, {"error": words.interrupted().summary.removeprefix("⚠️ ")}, {}
    outcome = turn.task.result()
    if outcome is not None:
        made = answer(outcome)
        return (502 if made.failed else status), made.body, {}
    if turn.error is not None:
        code, message, headers = describe(turn.error, session_id=turn.session_id)
        return code, {"error": message}, headers
    message = turn.surface.problem or words.explain(RuntimeError())
    return 500, {"error": message}, {}


def _encode(event: Event) -> bytes:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.kind}\ndata: {data}\n\n".encode()


async def respond(
    request: web.Request, turns: Turns, stream: Stream, *, status: int = 200
) -> web.StreamResponse:
    """Show ``stream`` and answer with its outcome (``status`` when it made one), or stream
    its events when the client asks for ``text/event-stream``."""
    session_id = request.match_info.get("id")
    if not wants_events(request):
        turn = turns.start(ApiSurface(), stream, session_id)
        await asyncio.shield(turn.task)  # a handler cancelled mid-turn leaves the turn running
        code, body, headers = _final(turn, status)
        if code >= 400:
            return json_error(code, str(body.pop("error")), headers=headers, extra=body)
        return web.json_response(body, status=code, headers=headers)
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    turn = turns.start(ApiSurface(queue.put_nowait), stream, session_id)
    turn.task.add_done_callback(lambda _: queue.put_nowait(None))
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    first = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            events = [first]
            while events[-1] is not None and not queue.empty():  # queued already: one write
                events.append(queue.get_nowait())
            data = b"".join(_encode(event) for event in events if event is not None)
            if events[-1] is None:
                code, body, _ = _final(turn, status)
                data += _encode(Event("error" if code >= 400 else "done", body))
            await response.write(data)
            if events[-1] is None:
                break
        await response.write_eof()
    except ConnectionError:  # the client left: the turn goes on without it
        turn.surface.detach()
    except asyncio.CancelledError:
        turn.surface.detach()
        raise
    return response
