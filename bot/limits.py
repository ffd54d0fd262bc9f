"""Input limits, per-user rate limits and allow-lists: the checks every adapter gets for free."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import EmptyPrompt, NotAllowed, PromptTooLong, RateLimited

__all__ = ["AccessPolicy", "RateLimiter", "check_prompt"]


def check_prompt(text: str, *, limit: int) -> str:
    """The prompt stripped; refuses empty and oversized text before any engine is called."""
    stripped = text.strip()
    if not stripped:
        raise EmptyPrompt()
    if len(stripped) > limit:
        raise PromptTooLong(len(stripped), limit)
    return stripped


class RateLimiter:
    """At most ``limit`` requests per user in any ``window`` seconds (a sliding window)."""

    def __init__(
        self, *, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

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
