"""One engine per catalog entry, created from the catalog and started once.

The default model is started when the service starts (local models load then, not on the first
request). A model first named later in a chat is created and started on that request; its
readiness is visible through :meth:`EnginePool.status`.

Engines are keyed by the whole :class:`ModelSpec`, not its ``ref``: two entries may name the
same model id on different servers with different keys and parameters, and a request for one
must never go to the other's server with the other's key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import UnknownModelRef
from engines import Catalog, Engine, EngineError, ModelSpec, Readiness, UnknownModel, create_engine

__all__ = ["EnginePool", "ModelStatus"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    spec: ModelSpec
    readiness: Readiness | None  # None: not started in this process
    default: bool


class EnginePool:
    def __init__(
        self,
        *,
        catalog: Catalog,
        default_model: str,
        factory: Callable[[ModelSpec], Engine] = create_engine,
    ) -> None:
        self.catalog = catalog
        self.default_model = default_model
        self._factory = factory
        self._engines: dict[ModelSpec, Engine] = {}
        self._starting: dict[ModelSpec, asyncio.Task[None]] = {}
        self._broken: dict[ModelSpec, Readiness] = {}  # engines that could not even be created
        self._waiting: dict[ModelSpec, int] = {}  # turns waiting for a loading engine

    def resolve(self, ref: str | None) -> ModelSpec:
        """The catalog entry for ``ref`` (the default when None); a UserError when unknown."""
        try:
            return self.catalog.resolve(ref or self.default_model)
        except UnknownModel as err:
            raise UnknownModelRef(str(err)) from None

    async def start(self) -> None:
        """Create the default model's engine and wait for it to load (or fail to)."""
        spec = self.resolve(None)
        with contextlib.suppress(EngineError):  # recorded as the model's readiness
            self.get(spec)
            await self.wait_ready(spec)

    def get(self, spec: ModelSpec) -> Engine:
        """The engine for ``spec``, started in the background on first use.

        Raises EngineError when it cannot even be created (e.g. the local engine is missing).
        """
        engine = self._engines.get(spec)
        if engine is None:
            try:
                engine = self._factory(spec)
            except EngineError as err:  # shown as the model's readiness (e.g. in /healthz)
                self._broken[spec] = Readiness(state="failed", detail=str(err))
                raise
            self._engines[spec] = engine
            self._starting[spec] = asyncio.create_task(self._start(engine))
        return engine

    def is_loading(self, spec: ModelSpec) -> bool:
        task = self._starting.get(spec)
        return task is not None and not task.done()

    def waiting(self, spec: ModelSpec) -> int:
        """How many turns are already waiting for ``spec`` to finish loading."""
        return self._waiting.get(spec, 0)

    async def wait_ready(self, spec: ModelSpec) -> Readiness:
        """Wait for the engine's start to finish; its readiness says how it went."""
        task = self._starting.get(spec)
        if task is not None and not task.done():
            self._waiting[spec] = self.waiting(spec) + 1
            try:
                await asyncio.shield(task)
            finally:
                self._waiting[spec] -= 1
        return self._engines[spec].readiness

    @staticmethod
    async def _start(engine: Engine) -> None:
        with contextlib.suppress(EngineError):  # the engine records why in its readiness
            await engine.start()

    def queues(self) -> dict[str, int]:
        """Requests waiting in each started engine, by model name."""
        return {spec.name: engine.pending for spec, engine in self._engines.items()}

    def status(self) -> list[ModelStatus]:
        default = self.resolve(None)
        specs = dict.fromkeys([*self.catalog, default, *self._engines])
        return [
            ModelStatus(
                spec=spec,
                readiness=self._engines[spec].readiness
                if spec in self._engines
                else self._broken.get(spec),
                default=spec == default,
            )
            for spec in specs
        ]

    async def probe(self) -> list[ModelStatus]:
        """Status of every model, starting the engines that are cheap to start (no weights)
        and asking each server whether it answers (``GET /models``)."""
        for spec in [self.resolve(None), *self.catalog]:
            if spec in self._engines or spec in self._broken:
                continue
            try:
                engine = self._factory(spec)
            except EngineError as err:
                self._broken[spec] = Readiness(state="failed", detail=str(err))
                continue
            if engine.loads_weights:
                await engine.aclose()
                continue
            self._engines[spec] = engine
            self._starting[spec] = asyncio.create_task(self._start(engine))
        await asyncio.gather(*self._starting.values())
        await asyncio.gather(*(e.probe() for e in self._engines.values() if not e.loads_weights))
        return self.status()

    async def server_models(self, ref: str | None) -> list[str]:
        """What the server behind ``ref`` (the default model when None) offers."""
        spec = self.resolve(ref)
        engine = self.get(spec)
        await self.wait_ready(spec)
        return await engine.server_models()

    async def aclose(self) -> None:
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        await asyncio.gather(*(e.aclose() for e in self._engines.values()), return_exceptions=True)
        self._engines.clear()
        self._starting.clear()
