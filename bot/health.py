"""What ``/livez`` and ``/readyz`` answer: whether the process lives, and whether it can serve.

Liveness is the process answering at all (a supervisor restarts it when not). Readiness is
every part a user's message needs, each with its reason when it fails:

- the database answers a query;
- every configured chat adapter is connected (an adapter whose login failed for good — a
  revoked token, a refused intent, Discord's close 4014 — reports ``failed`` with why, and
  stays failed instead of retrying in a loop);
- the default model can answer: a local model is loaded; a server answered ``GET /models``
  within the probe's timeout (asked at most every :data:`PROBE_EVERY` seconds, so a load
  balancer polling every second does not become the server's traffic).

A load balancer sends traffic only to ready replicas; a replica that is alive but not ready
is left running, since most causes (a model loading, a server down) pass by themselves.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App

__all__ = ["PROBE_EVERY", "Check", "Readiness"]

PROBE_EVERY = 10.0  # seconds between two probes of the default model's server
DB_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str  # "database", "slack", "discord", "model"
    ok: bool
    detail: str = ""


class Readiness:
    """The checks of one running app; the engine probe is cached for :data:`PROBE_EVERY`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._probed = -PROBE_EVERY
        self._lock = asyncio.Lock()

    async def checks(self) -> list[Check]:
        return [await self._database(), *self._adapters(), await self._model()]

    async def _database(self) -> Check:
        try:
            async with asyncio.timeout(DB_TIMEOUT):
                await self.app.store.get_session(0)
        except Exception as err:  # any failure is the answer, never a 500
            return Check(name="database", ok=False, detail=f"{type(err).__name__}: {err}")
        return Check(name="database", ok=True)

    def _adapters(self) -> list[Check]:
        found = []
        for adapter in self.app.adapters:
            health = adapter.health
            found.append(
                Check(name=adapter.name, ok=health.state == "connected", detail=str(health))
            )
        return found

    async def _model(self) -> Check:
        pool = self.app.engines
        spec = pool.resolve(None)
        async with self._lock:
            if time.monotonic() - self._probed >= PROBE_EVERY and not pool.is_loading(spec):
                self._probed = time.monotonic()
                try:
                    engine = pool.get(spec)
                except Exception:  # recorded as the model's readiness
                    pass
                else:
                    if not engine.loads_weights:
                        await engine.probe()
        status = next(st for st in pool.status() if st.default)
        readiness = status.readiness
        state = readiness.state if readiness else "loading"
        return Check(
            name="model", ok=state == "ready", detail=f"{spec.name}: {readiness or 'loading'}"
        )
