"""``codethread serve``: one asyncio process running every configured adapter.

One aiohttp application hosts ``GET /healthz``, ``GET /metrics`` and (with Slack in HTTP mode)
``POST /slack/events``. Adapters whose credentials are not set are skipped, and the log says so.
``/healthz`` answers 200 when the default model is ready and 503 while it loads or after it
failed, with the readiness of every started model in the JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.app import App, build
from bot.config import Config
from bot.errors import UserError

__all__ = ["make_web_app", "serve"]

log = logging.getLogger("codethread")

APP_KEY = web.AppKey("codethread", App)
DRAIN_SECONDS = 5.0  # on shutdown, how long answers in flight may take to finish


async def _healthz(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    statuses = app.engines.status()
    default = next(st for st in statuses if st.default)
    state = default.readiness.state if default.readiness else "loading"
    body = {
        "status": "ok" if state == "ready" else state,
        "default_model": default.spec.name,
        "models": {st.spec.name: str(st.readiness) for st in statuses if st.readiness},
    }
    return web.json_response(body, status=200 if state == "ready" else 503)


async def _metrics(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return web.Response(body=app.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_web_app(app: App) -> web.Application:
    """``/healthz``, ``/metrics`` and the adapters' routes (Slack's ``/slack/events``)."""
    web_app = web.Application()
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", _healthz)
    web_app.router.add_get("/metrics", _metrics)
    for adapter in app.adapters:
        web_app.router.add_routes(adapter.routes())
    return web_app


async def serve(config: Config, *, host: str, port: int) -> None:
    """Run until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = await build(config)
    adapters = app.adapters
    runner: web.AppRunner | None = None
    try:
        runner = web.AppRunner(make_web_app(app))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:  # the port is taken, a privileged port, an unknown address
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"Cannot listen on {host}:{port}: the port is in use (another codethread "
                    "serve?). Stop that server or pick another --port."
                ) from None
            raise UserError(f"Cannot listen on {host}:{port}: {err.strerror or err}.") from None
        log.info("listening on http://%s:%d (/healthz, /metrics)", host, port)
        for adapter in adapters:
            await adapter.start()
            log.info("%s adapter started", adapter.name)
        if not adapters:
            log.info(
                "no chat adapter has credentials (set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN); "
                "serving /healthz and /metrics only"
            )
        start = asyncio.create_task(app.start())
        start.add_done_callback(_log_start)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        start.cancel()
    finally:
        for adapter in adapters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(adapter.drain(), DRAIN_SECONDS)
        if runner is not None:
            await runner.cleanup()
        await app.aclose()


def _log_start(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("start-up failed: %s", error)
