"""Prometheus metrics of one running bot, on a registry of its own (no global state).

The registry and its instruments are made on first use: importing prometheus_client (which
brings ``http.server``) costs about 13 ms, and the short CLI commands (``snippets list``,
``snippets show``) build the app without ever counting anything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]


@dataclass(frozen=True, slots=True)
class _Instruments:
    registry: CollectorRegistry
    turns: Counter
    answer_seconds: Histogram
    events: Counter


class Metrics:
    @functools.cached_property
    def _instruments(self) -> _Instruments:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        registry = CollectorRegistry()
        return _Instruments(
            registry=registry,
            turns=Counter(
                "codethread_turns",
                "Turns by outcome: a new version, a non-code answer, or a failure.",
                ["outcome"],
                registry=registry,
            ),
            answer_seconds=Histogram(
                "codethread_answer_seconds",
                "Time the engine took for one whole answer.",
                ["model"],
                buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
                registry=registry,
            ),
            events=Counter(
                "codethread_events",
                "Platform events received, by platform and kind.",
                ["platform", "kind"],
                registry=registry,
            ),
        )

    @property
    def registry(self) -> CollectorRegistry:
        return self._instruments.registry

    @property
    def turns(self) -> Counter:
        return self._instruments.turns

    @property
    def answer_seconds(self) -> Histogram:
        return self._instruments.answer_seconds

    @property
    def events(self) -> Counter:
        return self._instruments.events

    def observe_answer(self, *, model: str, seconds: float) -> None:
        self.answer_seconds.labels(model=model).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
