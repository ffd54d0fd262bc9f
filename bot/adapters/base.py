"""What ``codethread serve`` needs of a chat adapter, and the background jobs both keep."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from aiohttp import web

__all__ = ["AdapterHealth", "ChatAdapter", "Jobs"]

log = logging.getLogger("codethread.adapters")


class Jobs:
    """The work an adapter started after acknowledging an event: turns, runs, replies.

    :meth:`drain` waits for all of it (on shutdown, so that answers in flight are stored and
    shown); :meth:`cancel` ends what is left (the presenter then marks a live message as
    interrupted rather than leaving "writing …").
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guarded(job), name=f"codethread-{self.name}-job")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: job.close())  # never started (cancelled): no warning

    @staticmethod
    async def _guarded(job: Coroutine[Any, Any, Any]) -> None:
        try:
            await job
        except Exception:  # the presenter reports errors to people; this is a last resort
            log.exception("a background job failed")

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class AdapterHealth:
    """Where an adapter's connection stands, for ``/readyz``: ``failed`` is for good (a login
    the platform refused), with the reason and its fix."""

    state: Literal["starting", "connected", "failed"] = "starting"
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


class ChatAdapter(abc.ABC):
    """A platform connection run inside the server's event loop.

    ``routes`` are mounted on the shared aiohttp app (e.g. Slack's ``POST /slack/events``) before
    it starts listening; ``start`` then connects (Socket Mode, Discord's gateway) and returns
    once connecting has begun; ``drain`` waits for the answers in flight; ``aclose``
    disconnects (safe to call twice).
    """

    name: ClassVar[str]
    #: set by the adapter as its connection comes up or fails
    health: AdapterHealth = AdapterHealth()

    def routes(self) -> list[web.RouteDef]:
        return []

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait for the answers already in flight (called on shutdown, with a time limit)."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...
