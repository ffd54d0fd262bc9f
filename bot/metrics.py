"""Prometheus metrics of one running bot, on a registry of its own (no global state).

The registry and its instruments are made on first use: importing prometheus_client (which
brings ``http.server``) costs about 13 ms, and the short CLI commands (``snippets list``,
``snippets show``) build the app without ever counting anything.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: what the gauges read at scrape time: engine queue by model; sandbox runs active, waiting
EngineQueues = Callable[[], Mapping[str, int]]
SandboxLoad = Callable[[], tuple[int, int]]

__all__ = ["Metrics"]


@dataclass(frozen=True, slots=True)
class _Instruments:
    registry: CollectorRegistry
    turns: Counter
    answer_seconds: Histogram
    events: Counter
    in_flight: Gauge
    tokens: Counter
    throttled: Counter


class Metrics:
    _watching = False

    @functools.cached_property
    def _instruments(self) -> _Instruments:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        registry = CollectorRegistry()
        instruments = _Instruments(
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
            in_flight=Gauge(
                "codethread_turns_in_flight",
                "Turns whose answer is being written now.",
                registry=registry,
            ),
            tokens=Counter(
                "codethread_tokens",
                "Tokens of prompts and answers, by model.",
                ["model", "kind"],
                registry=registry,
            ),
            throttled=Counter(
                "codethread_platform_throttled",
                "Calls a platform refused with 429 (rate limited), by platform.",
                ["platform"],
                registry=registry,
            ),
        )
        _build_info(registry)
        return instruments

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

    @property
    def in_flight(self) -> Gauge:
        return self._instruments.in_flight

    @property
    def throttled(self) -> Counter:
        return self._instruments.throttled

    def observe_answer(self, *, model: str, seconds: float) -> None:
        self.answer_seconds.labels(model=model).observe(seconds)

    def count_tokens(self, *, model: str, prompt: int | None, completion: int | None) -> None:
        if prompt:
            self._instruments.tokens.labels(model=model, kind="prompt").inc(prompt)
        if completion:
            self._instruments.tokens.labels(model=model, kind="completion").inc(completion)

    def watch(
        self,
        *,
        engines: EngineQueues,
        sandbox: SandboxLoad | None,
        jobs: Callable[[], int] | None = None,
    ) -> None:
        """Gauges read at scrape time: requests waiting in each engine, sandbox runs active
        and waiting, durable turns queued. Once per registry (a second call is ignored)."""
        if not self._watching:
            self.registry.register(_Load(engines, sandbox, jobs))
            self._watching = True

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _build_info(registry: CollectorRegistry) -> None:
    from prometheus_client import Info

    try:
        version = metadata.version("codethread")
    except metadata.PackageNotFoundError:
        version = "unknown"
    Info("codethread_build", "The running codethread.", registry=registry).info(
        {"version": version, "python": platform.python_version()}
    )


class _Load:
    """A collector over live values (no state of its own to keep in step)."""

    def __init__(
        self,
        engines: EngineQueues,
        sandbox: SandboxLoad | None,
        jobs: Callable[[], int] | None,
    ) -> None:
        self.engines = engines
        self.sandbox = sandbox
        self.jobs = jobs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        queue = GaugeMetricFamily(
            "codethread_engine_queue",
            "Requests accepted by an engine and waiting for the model.",
            labels=["model"],
        )
        for model, pending in self.engines().items():
            queue.add_metric([model], pending)
        yield queue
        if self.sandbox is not None:
            active, waiting = self.sandbox()
            runs = GaugeMetricFamily(
                "codethread_sandbox_runs", "Sandboxed runs, by state.", labels=["state"]
            )
            runs.add_metric(["active"], active)
            runs.add_metric(["waiting"], waiting)
            yield runs
        if self.jobs is not None:
            yield GaugeMetricFamily(
                "codethread_jobs_queued",
                "Durable turns written down and not yet claimed, in the whole database.",
                value=self.jobs(),
            )
