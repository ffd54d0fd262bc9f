"""First come, first served turns per session.

A turn takes its place in its session's line synchronously, before it yields anything, so the
order of arrival is the order of work even when the caller does slow I/O (posting a "waiting"
message) between events. A session's line is forgotten when it empties.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

__all__ = ["SessionQueue", "Ticket"]


@dataclass(eq=False, slots=True)
class Ticket:
    session_id: int
    ahead: int  # turns in line before this one when it joined
    _turn: asyncio.Future[None]

    async def wait(self) -> None:
        """Until every earlier turn of the session has left the line."""
        await self._turn


class SessionQueue:
    def __init__(self) -> None:
        self._lines: dict[int, deque[asyncio.Future[None]]] = {}

    def join(self, session_id: int) -> Ticket:
        line = self._lines.setdefault(session_id, deque())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not line:
            turn.set_result(None)
        line.append(turn)
        return Ticket(session_id, len(line) - 1, turn)

    def leave(self, ticket: Ticket) -> None:
        """Leave the line (done, failed or cancelled); the next turn may go."""
        line = self._lines[ticket.session_id]
        line.remove(ticket._turn)
        if not line:
            del self._lines[ticket.session_id]
        elif not line[0].done():
            line[0].set_result(None)
