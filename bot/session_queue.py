"""First come, first served turns per thread.

A turn takes its place in its thread's line synchronously, when the adapter hands it over and
before any await, so the order of arrival is the order of work even when the caller does slow
I/O (posting a "waiting" message) between events, and even before the thread's session exists
(a reply right after ``/code`` opened the thread waits for the first turn). A line is keyed by
the session's thread (:class:`storage.SessionKey`) and forgotten when it empties.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["SessionQueue", "Ticket"]


@dataclass(eq=False, slots=True)
class Ticket:
    key: Hashable
    ahead: int  # turns in line before this one when it joined
    _turn: asyncio.Future[None]
    opening: bool = False  # the turn that creates the thread's session

    async def wait(self) -> None:
        """Until every earlier turn of the session has left the line."""
        await self._turn


class SessionQueue:
    def __init__(self) -> None:
        self._lines: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._opening: dict[Hashable, int] = {}  # opening turns in each line

    def join(self, key: Hashable, *, opening: bool = False) -> Ticket:
        """A place at the end of ``key``'s line; ``opening``: this turn creates the thread's
        session (a reply behind it waits for the session rather than finding none)."""
        line = self._lines.setdefault(key, deque())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not line:
            turn.set_result(None)
        line.append(turn)
        if opening:
            self._opening[key] = self._opening.get(key, 0) + 1
        return Ticket(key, len(line) - 1, turn, opening)

    def opening(self, key: Hashable) -> bool:
        """Whether a turn that creates ``key``'s session is in its line."""
        return key in self._opening

    def leave(self, ticket: Ticket) -> None:
        """Leave the line (done, failed or cancelled); the next turn may go."""
        if ticket.opening:
            self._opening[ticket.key] -= 1
            if not self._opening[ticket.key]:
                del self._opening[ticket.key]
        line = self._lines[ticket.key]
        line.remove(ticket._turn)
        if not line:
            del self._lines[ticket.key]
        elif not line[0].done():
            line[0].set_result(None)
