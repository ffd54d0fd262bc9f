"""One engine per model reference, created from the catalog and started once.

The default model is started when the service starts (local models load then, not on the first
request). A model first named later in a chat is created and started on that request; its
readiness is visible through :meth:`EnginePool.status`.
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
        self._engines: dict[str, Engine] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._broken: dict[str, Readiness] = {}  # engines that could not even be created
        self._waiting: dict[str, int] = {}  # turns waiting for a loading engine, per ref

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
        engine = self._engines.get(spec.ref)
        if engine is None:
            try:
                engine = self._factory(spec)
            except EngineError as err:  # shown as the model's readiness (e.g. in /healthz)
                self._broken[spec.ref] = Readiness(state="failed", detail=str(err))
                raise
            self._engines[spec.ref] = engine
            self._starting[spec.ref] = asyncio.create_task(self._start(engine))
        return engine

    def is_loading(self, spec: ModelSpec) -> bool:
        task = self._starting.get(spec.ref)
        return task is not None and not task.done()

    def waiting(self, spec: ModelSpec) -> int:
        """How many turns are already waiting for ``spec`` to finish loading."""
        return self._waiting.get(spec.ref, 0)

    async def wait_ready(self, spec: ModelSpec) -> Readiness:
        """Wait for the engine's start to finish; its readiness says how it went."""
        task = self._starting.get(spec.ref)
        if task is not None and not task.done():
            self._waiting[spec.ref] = self.waiting(spec) + 1
            try:
                await asyncio.shield(task)
            finally:
                self._waiting[spec.ref] -= 1
        return self._engines[spec.ref].readiness

    @staticmethod
    async def _start(engine: Engine) -> None:
        with contextlib.suppress(EngineError):  # the engine records why in its readiness
            await engine.start()

    def status(self) -> list[ModelStatus]:
        default = self.resolve(None)
        specs = {spec.ref: spec for spec in self.catalog} | {default.ref: default}
        for ref in self._engines:
            specs.setdefault(ref, self.catalog.resolve(ref))
        return [
            ModelStatus(
                spec=spec,
                readiness=self._engines[ref].readiness
                if ref in self._engines
                else self._broken.get(ref),
                default=ref == default.ref,
            )
            for ref, spec in specs.items()
        ]

    async def probe(self) -> list[ModelStatus]:
        """Status of every model, starting the engines that are cheap to start (no weights)."""
        for spec in [self.resolve(None), *self.catalog]:
            if spec.ref in self._engines or spec.ref in self._broken:
                continue
            try:
                engine = self._factory(spec)
            except EngineError as err:
                self._broken[spec.ref] = Readiness(state="failed", detail=str(err))
                continue
            if engine.loads_weights:
                await engine.aclose()
                continue
            self._engines[spec.ref] = engine
            self._starting[spec.ref] = asyncio.create_task(self._start(engine))
        await asyncio.gather(*self._starting.values())
        return self.status()

    async def aclose(self) -> None:
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        await asyncio.gather(*(e.aclose() for e in self._engines.values()), return_exceptions=True)
        self._engines.clear()
        self._starting.clear()
