"""The one message a turn or a run is shown in, edited at the platform's pace.

Posted on the first view, then edited to the newest view at most once per ``interval``: views
that arrive faster are coalesced (only the newest is shown, and a streaming view is built only
when an edit is due), so a message never sees more than one edit per interval and the stream
of the answer is never held up by the platform. The interval is a rate budget for the
streaming edits: the final view does not wait it out. It replaces the message at once (a
streaming edit still waiting for its turn is dropped), keeping only the platform's hard
minimum between two edits (the surface's ``edit_minimum``, 0 unless it says otherwise); when
that edit fails, it is posted anew, so a result is never lost to a refused edit. Shared by
every surface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Generic

from bot.present.surface import Handle, Surface
from bot.present.views import View
from bot.present.words import PlatformRefused

__all__ = ["LiveMessage", "Throttle"]

log = logging.getLogger("codethread.present")


class Throttle:
    """Says when a message may be edited again: at most once per ``interval``."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = float("-inf")

    def ready(self) -> bool:
        """True (and the interval starts again) when an edit may happen now."""
        if self.remaining() <= 0:
            self._last = self._clock()
            return True
        return False

    def restart(self) -> None:
        """Count the interval from now (an edit happened outside :meth:`ready`)."""
        self._last = self._clock()

    def remaining(self) -> float:
        """Seconds until the next edit may happen (0 when it may happen now)."""
        return max(0.0, self._last + self.interval - self._clock())


class LiveMessage(Generic[Handle]):
    def __init__(self, surface: Surface[Handle]) -> None:
        self.surface = surface
        self.handle: Handle | None = None
        self._throttle = Throttle(surface.edit_interval)
        self._floor = Throttle(float(getattr(surface, "edit_minimum", 0.0)))
        self._pending: Callable[[], View] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._editing = False  # the pump is in a call to the platform (not waiting its turn)

    @property
    def posted(self) -> bool:
        return self.handle is not None

    async def show(self, view: View | Callable[[], View]) -> None:
        """Show ``view`` (or what ``view()`` builds when its edit is due) as soon as the pace
        allows. The first view is posted at once; a refused post raises."""
        build = view if callable(view) else (lambda: view)
        if self.handle is None:
            self.handle = await self.surface.post(build())
            self._restart()
            return
        self._pending = build
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._edits(self.handle))

    async def _edits(self, handle: Handle) -> None:
        while self._pending is not None:
            await asyncio.sleep(self._throttle.remaining())
            build, self._pending = self._pending, None
            if build is None:
                return
            self._editing = True
            try:
                await self.surface.edit(handle, build())
            except PlatformRefused as err:  # the next edit, or the result, tries again
                log.info("skipped a progress edit: %s", err)
            finally:
                self._editing = False
            self._restart()

    def _restart(self) -> None:
        self._throttle.restart()
        self._floor.restart()

    async def _settle(self) -> None:
        """Drop views not yet shown: a streaming edit waiting for its turn is dropped, one under
        way may finish (so nothing lands after what comes next)."""
        self._pending = None
        pump, self._pump = self._pump, None
        if pump is None:
            return
        if not pump.done():
            if not self._editing:
                pump.cancel()
            await asyncio.wait([pump])
        if not pump.cancelled() and pump.exception() is not None:
            log.warning("a progress edit failed: %r", pump.exception())

    async def finish(self, view: View) -> None:
        """Replace the message with the result at once (posted anew if the edit is refused)."""
        await self._settle()
        if self.handle is not None:
            await asyncio.sleep(self._floor.remaining())
            try:
                await self.surface.edit(self.handle, view)
                self._restart()
                return
            except PlatformRefused as err:
                log.warning("could not edit the live message (%s); posting the result anew", err)
        self.handle = await self.surface.post(view)
        self._restart()

    async def withdraw(self) -> None:
        """Take the message back (a run that was refused is told privately instead)."""
        await self._settle()
        if self.handle is not None:
            with contextlib.suppress(PlatformRefused):
                await self.surface.remove(self.handle)
            self.handle = None

    async def abandon(self, view: View) -> None:
        """Best effort, on an error or shutdown: never leave "writing …" behind."""
        await self._settle()
        if self.handle is not None:
            with contextlib.suppress(Exception):
                await self.surface.edit(self.handle, view)

    def cancel(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
