"""The composition root: the one place that turns a :class:`Config` into running parts.

``build(config)`` opens the store, builds the model catalog and the engine pool, wires the
session and run services and the presenter, and makes the chat adapters whose credentials are
set (each imported only then); nothing here runs at import. ``codethread serve`` and
``codethread chat`` both start from it. Tests call it with their own engine factory (and, for
Discord, a recording HTTP client).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.core import ServiceSettings, SessionService
from bot.engine_pool import EnginePool
from bot.errors import ConfigError
from bot.jobs import Worker
from bot.languages import Languages
from bot.limits import AccessPolicy, RateLimiter
from bot.metrics import Metrics
from bot.present import Presenter
from bot.present.presenter import HISTORY_LINK_MINUTES
from bot.remote_runs import JobPool
from bot.runs import RunService
from bot.web.auth import store_login_url
from engines import Catalog, Engine, ModelSpec, create_engine
from sandbox import Sandbox, SandboxPool
from storage import Store, StoreError, is_postgres_url

if TYPE_CHECKING:
    from discord.http import HTTPClient

    from bot.adapters.base import ChatAdapter  # imports aiohttp: only for serve

__all__ = ["App", "build"]

#: sessions without a version (a failed first ask, a non-code answer) go after a day
EMPTY_SESSION_TTL = 24 * 3600.0


@dataclass(kw_only=True)
class App:
    config: Config
    store: Store
    engines: EnginePool
    service: SessionService
    runs: RunService
    presenter: Presenter
    metrics: Metrics
    adapters: list[ChatAdapter] = field(default_factory=list)
    #: durable turns (serve): platform events are rows the worker performs (bot.jobs)
    worker: Worker | None = None

    async def start(self) -> None:
        """Probe the sandbox and start (load) the default model."""
        await self.runs.prepare()
        await self.engines.start()

    async def aclose(self) -> None:
        if self.worker is not None:
            await self.worker.stop(drain=0)
        for adapter in self.adapters:
            await adapter.aclose()
        await self.engines.aclose()
        await self.store.close()


async def build(
    config: Config,
    *,
    engine_factory: Callable[[ModelSpec], Engine] = create_engine,
    adapters: bool = True,
    discord_http: HTTPClient | None = None,
) -> App:
    """Wire every part from ``config``; raises ConfigError (a UserError) on bad settings.

    With ``adapters`` (the default), the Slack and Discord adapters whose tokens are set are
    made too; ``discord_http`` replaces discord.py's REST client (tests).
    """
    catalog = Catalog.builtin().with_specs(config.models)
    engines = EnginePool(catalog=catalog, default_model=config.model, factory=engine_factory)
    engines.resolve(None)  # an unknown default model is a configuration error, found now
    languages = Languages()
    languages.get(config.language)
    try:
        store = await Store.open(config.db_path)
        await store.prune_empty(older_than=EMPTY_SESSION_TTL)
    except (OSError, sqlite3.Error, StoreError) as err:
        where = "" if isinstance(config.db_path, str) else f" {config.db_path}"  # a URL's password
        raise ConfigError(f"Cannot open the database{where}: {err}") from None
    pool: SandboxPool | None = None
    if config.run_snippets:
        sandbox = Sandbox(environment_dir=config.sandbox.directory)
        # with run workers, a run is a job that a `codethread worker` performs
        pool = JobPool(sandbox, store) if config.run_workers else SandboxPool(sandbox)
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
        rate_limiter=RateLimiter(
            limit=config.rate_limit_per_minute,
            # replicas share one PostgreSQL: a user's requests are counted there too
            shared=store.rate_hit if is_postgres_url(config.db_path) else None,
        ),
        access=AccessPolicy(users=config.allowed_users, channels=config.allowed_channels),
        packages=(lambda lang: pool.sandbox.environment().packages_for(lang)) if pool else None,
    )
    runs = RunService(
        sessions=service,
        pool=pool,
        repair_attempts=config.repair_attempts,
        history=config.public_url is not None,
    )
    history = None
    if config.public_url is not None:  # View history: a one-time link to the web page
        history = functools.partial(
            store_login_url, store, base=config.public_url, ttl=HISTORY_LINK_MINUTES * 60
        )
    app = App(
        config=config,
        store=store,
        engines=engines,
        service=service,
        runs=runs,
        presenter=Presenter(service, runs, history=history),
        metrics=metrics,
    )
    if adapters:
        app.worker = Worker(store, stale_after=config.job_stale_after)
        try:
            app.adapters = _adapters(app, discord_http)
        except BaseException:
            await app.aclose()
            raise
    return app


def _adapters(app: App, discord_http: HTTPClient | None) -> list[ChatAdapter]:
    """The chat adapters whose credentials are set (their libraries imported only then)."""
    config = app.config
    made: list[ChatAdapter] = []
    parts: dict[str, Any] = {
        "sessions": app.service,
        "presenter": app.presenter,
        "metrics": app.metrics,
    }
    if config.slack_bot_token:
        from bot.adapters.slack import SlackAdapter

        made.append(
            SlackAdapter(
                **parts,
                bot_token=config.slack_bot_token,
                signing_secret=config.slack_signing_secret,
                app_token=config.slack_app_token,
                api_url=config.slack_api_url,
                edit_interval=config.edit_interval,
                worker=app.worker,
            )
        )
    if config.discord_bot_token:
        from bot.adapters.discord import DiscordAdapter

        made.append(
            DiscordAdapter(
                **parts,
                token=config.discord_bot_token,
                api_url=config.discord_api_url,
                allow_dms=config.discord_allow_dms,
                http=discord_http,
                edit_interval=config.edit_interval,
                shard_count=config.discord_shard_count,
                shard_ids=config.discord_shard_ids,
                worker=app.worker,
            )
        )
    return made
