"""The composition root: the one place that turns a :class:`Config` into running parts.

``build(config)`` opens the store, builds the model catalog and the engine pool, and wires the
session service; nothing here runs at import. Tests call it with their own engine factory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Config
from bot.core import ServiceSettings, SessionService
from bot.engine_pool import EnginePool
from bot.errors import ConfigError
from bot.languages import Languages
from bot.limits import AccessPolicy, RateLimiter
from bot.metrics import Metrics
from bot.runs import RunService
from engines import Catalog, Engine, ModelSpec, create_engine
from sandbox import Sandbox, SandboxPool
from storage import Store, StoreError

__all__ = ["App", "build"]


@dataclass(kw_only=True)
class App:
    config: Config
    store: Store
    engines: EnginePool
    service: SessionService
    runs: RunService
    metrics: Metrics

    async def start(self) -> None:
        """Probe the sandbox and start (load) the default model."""
        await self.runs.prepare()
        await self.engines.start()

    async def aclose(self) -> None:
        await self.engines.aclose()
        await self.store.close()


async def build(
    config: Config, *, engine_factory: Callable[[ModelSpec], Engine] = create_engine
) -> App:
    """Wire every part from ``config``; raises ConfigError (a UserError) on bad settings."""
    try:
        catalog = Catalog.builtin().extended(config.models)
    except ValueError as err:
        raise ConfigError(f"Bad [models] entry in the config: {err}") from None
    engines = EnginePool(catalog=catalog, default_model=config.model, factory=engine_factory)
    engines.resolve(None)  # an unknown default model is a configuration error, found now
    languages = Languages()
    languages.get(config.language)
    try:
        store = await Store.open(config.db_path)
    except (OSError, sqlite3.Error, StoreError) as err:
        raise ConfigError(f"Cannot open the database {config.db_path}: {err}") from None
    metrics = Metrics()
    service = SessionService(
        store=store,
        engines=engines,
        languages=languages,
        settings=ServiceSettings(
            default_language=config.language,
            max_prompt_chars=config.max_prompt_chars,
            turn_timeout=config.turn_timeout,
            allow_any_model=config.allow_any_model,
        ),
        metrics=metrics,
        rate_limiter=RateLimiter(limit=config.rate_limit_per_minute),
        access=AccessPolicy(users=config.allowed_users, channels=config.allowed_channels),
    )
    pool = SandboxPool(Sandbox()) if config.run_snippets else None
    runs = RunService(sessions=service, pool=pool, repair_attempts=config.repair_attempts)
    return App(
        config=config, store=store, engines=engines, service=service, runs=runs, metrics=metrics
    )
