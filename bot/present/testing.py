"""A surface that records what it is asked to show, for testing the presenter once.

Like errbot's test backend: every call becomes a :class:`Shown` entry in :attr:`calls` (and in
an :class:`asyncio.Queue` a test can await), so one test of the presenter covers what every
platform's surface is asked to do. ``refuse`` makes chosen verbs raise
:class:`~bot.present.words.PlatformRefused`, as a platform that says no.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.present.views import Closed, View
from bot.present.words import PlatformRefused
from storage import Session

__all__ = ["RecordingSurface", "Shown"]

Verb = Literal["post", "edit", "remove", "tell", "close"]


@dataclass(frozen=True, slots=True)
class Shown:
    verb: Verb
    handle: int | None
    view: View | None


@dataclass(eq=False)
class RecordingSurface:
    limit: int = 2000
    edit_interval: float = 0.0
    refuse: set[Verb] = field(default_factory=set)
    calls: list[Shown] = field(default_factory=list)
    queue: asyncio.Queue[Shown] = field(default_factory=asyncio.Queue)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def escape(self, text: str) -> str:
        return text

    def _record(self, verb: Verb, handle: int | None, view: View | None) -> None:
        if verb in self.refuse:
            raise PlatformRefused("rate_limited", "refused by the test", retry_after=1.0)
        shown = Shown(verb, handle, view)
        self.calls.append(shown)
        self.queue.put_nowait(shown)

    async def post(self, view: View) -> int:
        handle = next(self._ids)
        self._record("post", handle, view)
        return handle

    async def edit(self, handle: int, view: View) -> None:
        self._record("edit", handle, view)

    async def remove(self, handle: int) -> None:
        self._record("remove", handle, None)

    async def tell(self, view: View) -> None:
        self._record("tell", None, view)

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        return {s.id: f"https://chat.example/{s.key.thread}" for s in sessions}

    def mention(self, user: str) -> str:
        return f"@{user}"

    async def close(self, session: Session, notice: Closed) -> None:
        self._record("close", None, notice)

    # -- for assertions ----------------------------------------------------------------------

    def messages(self) -> dict[int, View]:
        """Each public message's latest view, by handle."""
        latest: dict[int, View] = {}
        for shown in self.calls:
            if shown.handle is not None and shown.view is not None:
                latest[shown.handle] = shown.view
            elif shown.verb == "remove" and shown.handle is not None:
                latest.pop(shown.handle, None)
        return latest

    def told(self) -> list[View]:
        return [s.view for s in self.calls if s.verb == "tell" and s.view is not None]
