"""Slack's rate limits, kept on our side: a token bucket per method and workspace (or channel).

Slack limits each Web API method per workspace (``chat.update`` and ``chat.delete`` are Tier 3,
about 50 calls a minute with bursts; ``chat.appendStream`` Tier 4, about 100) and posting to
one message a second per channel. One live answer edited every second used a workspace's whole
``chat.update`` budget, so twenty answers at once got hundreds of 429s and results that came
minutes late. Every surface of one adapter shares one :class:`Pace`, so the calls of all the
answers in a workspace are counted together, a little under Slack's figures. Progress (a
streaming edit, an append, a status line) is sent only when the bucket has tokens to spare and
is otherwise dropped or held back; a result waits for its token, and the spare tokens are kept
for it, so that a result goes out at once.

The 429s Slack answers all the same (other apps on the workspace's budget, a limit lower than
documented) are retried after their ``Retry-After`` by :class:`RateLimitRetries`, the Web API
client's retry handler, which counts each one in ``codethread_platform_throttled_total``
(:meth:`Pace.throttled`), the last one it gives up on included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk.http_retry.async_handler import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

if TYPE_CHECKING:
    from bot.metrics import Metrics

__all__ = ["LIMITS", "Bucket", "Limit", "Pace", "RateLimitRetries"]


@dataclass(frozen=True, slots=True)
class Limit:
    per_minute: float
    burst: float
    per_channel: bool = False  # counted per channel (posting), else per workspace


#: what codethread allows itself; a little under Slack's documented figures, so that the
#: clock's jitter between here and Slack never tips a call over.
LIMITS = {
    "chat.update": Limit(45, 40),  # Tier 3 (50+ a minute)
    "chat.delete": Limit(45, 40),  # Tier 3
    "chat.appendStream": Limit(90, 80),  # Tier 4 (100+ a minute)
    "assistant.threads.setStatus": Limit(45, 20),  # no tier documented: Tier 3's, to be safe
    # "one message a second per channel, however it is posted": chat.postMessage, and
    # chat.startStream (its own tier is not documented), with a short burst
    "message": Limit(54, 2, per_channel=True),
}


class Bucket:
    """``per_minute`` calls on average and up to ``burst`` at once."""

    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = limit.per_minute / 60
        self.burst = limit.burst
        self._clock = clock
        self._tokens = limit.burst
        self._at = clock()
        self._waiting = asyncio.Lock()

    def _fill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def spare(self, keep: float = 0.0) -> bool:
        """Take a token if one is free beyond ``keep`` (kept for results) and nobody waits."""
        if self._waiting.locked() or self._fill() < 1 + keep:
            return False
        self._tokens -= 1
        return True

    async def take(self) -> None:
        """Take a token, waiting for one (in turn) when the bucket is empty."""
        async with self._waiting:
            if self._fill() < 1:  # the one token comes in this long
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._fill()
            self._tokens -= 1


class Pace:
    """The buckets of one adapter, the workspaces that do not stream, and the count of the
    429s Slack answered (in ``metrics``, when there are metrics)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, metrics: Metrics | None = None
    ) -> None:
        self._clock = clock
        self.metrics = metrics
        self._buckets: dict[tuple[str, str, str], Bucket] = {}
        #: workspaces where ``chat.startStream`` was refused as unavailable (edits there)
        self.unstreamed: set[str] = set()

    def bucket(self, method: str, team: str, channel: str = "") -> Bucket:
        limit = LIMITS[method]
        key = (method, team, channel if limit.per_channel else "")
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = Bucket(limit, self._clock)
        return found

    def throttled(self) -> None:
        """Slack answered a call 429 (rate limited)."""
        if self.metrics is not None:
            self.metrics.throttled.labels(platform="slack").inc()


class RateLimitRetries(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's retry of a 429 after its ``Retry-After`` (up to ``max_retry_count`` times),
    counting every 429 on ``pace``: the ones retried and the last one, which the caller gets
    as a ``ratelimited`` error."""

    def __init__(self, pace: Pace, *, max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pace = pace

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self.pace.throttled()
        return await super().can_retry_async(
            state=state, request=request, response=response, error=error
        )
