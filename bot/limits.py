"""Input limits, per-user rate limits and allow-lists: the checks every adapter gets for free."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.errors import EmptyPrompt, NotAllowed, PromptTooLong, RateLimited

__all__ = ["AccessPolicy", "RateLimiter", "SharedWindow", "check_prompt"]


def check_prompt(text: str, *, limit: int) -> str:
    """The prompt stripped; refuses empty and oversized text before any engine is called."""
    stripped = text.strip()
    if not stripped:
        raise EmptyPrompt()
    if len(stripped) > limit:
        raise PromptTooLong(len(stripped), limit)
    return stripped


class SharedWindow(Protocol):
    """A sliding window kept where every replica counts (:meth:`storage.Store.rate_hit`)."""

    def __call__(
        self, key: str, *, window: float, limit: int, count: bool = True
    ) -> Awaitable[float | None]: ...


class RateLimiter:
    """At most ``limit`` requests per user in any ``window`` seconds (a sliding window).

    The window is kept in memory, so a refusal is known before anything is posted
    (:meth:`check`). With ``shared`` (several replicas on one PostgreSQL), each request is
    also counted in the database's window (:meth:`count`), so a user whose messages are
    spread over replicas gets the same limit as on one: the database's count is never below
    this process's, so it is the one that binds.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedWindow | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._shared = shared
        self._hits: dict[str, deque[float]] = {}

    async def count(self, user: str) -> None:
        """Count one request in the shared window, if there is one; :class:`RateLimited`
        when the replicas together are over the limit."""
        if self.limit <= 0 or self._shared is None:
            return
        wait = await self._shared(f"rate:{user}", window=self.window, limit=self.limit)
        if wait is not None:
            raise RateLimited(wait)

    def check(self, user: str, *, count: bool = True) -> None:
        """Count one request for ``user`` (unless ``count`` is False, to look ahead only);
        raises :class:`RateLimited` when over the limit."""
        if self.limit <= 0:
            return
        now = self._clock()
        hits = self._hits.setdefault(user, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            raise RateLimited(hits[0] + self.window - now)
        if count:
            hits.append(now)
        if len(self._hits) > 10_000:  # forget idle users now and then
            self._hits = {u: h for u, h in self._hits.items() if h and h[-1] > now - self.window}


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessPolicy:
    """Optional allow-lists; empty means everyone / everywhere."""

    users: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def check(self, *, user: str, channel: str) -> None:
        if self.users and user not in self.users:
            raise NotAllowed("You're not on this bot's list of allowed users; ask its admin.")
        if self.channels and channel and channel not in self.channels:
            raise NotAllowed("codethread isn't enabled in this channel; ask its admin.")
