"""Prometheus metrics of one running bot, on a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "codethread_turns",
            "Turns by outcome: a new version, a non-code answer, or a failure.",
            ["outcome"],
            registry=self.registry,
        )
        self.answer_seconds = Histogram(
            "codethread_answer_seconds",
            "Time the engine took for one whole answer.",
            ["model"],
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
            registry=self.registry,
        )
        self.events = Counter(
            "codethread_events",
            "Platform events received, by platform and kind.",
            ["platform", "kind"],
            registry=self.registry,
        )

    def observe_answer(self, *, model: str, seconds: float) -> None:
        self.answer_seconds.labels(model=model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
