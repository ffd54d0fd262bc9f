"""``codethread serve``: one asyncio process running every configured adapter.

One aiohttp application hosts ``GET /livez``, ``GET /readyz`` (and ``/healthz``, its older
name), ``GET /metrics`` and (with Slack in HTTP mode) ``POST /slack/events``. Adapters whose
credentials are not set are skipped, and the log says so. ``/livez`` answers 200 while the
process answers; ``/readyz`` 200 when the database, every adapter and the default model are
ready, else 503, with each check and its reason in the JSON body (see :mod:`bot.health`).

The server is exposed to the internet (Slack posts to it), so it bounds what a client that
sends nothing valid can hold: a request's headers must arrive within
:data:`HEADER_SECONDS` of the connection (aiohttp closes an idle connection after its
keep-alive timeout, which it arms at connect), its body within :data:`BODY_SECONDS`, bodies
are capped at :data:`MAX_BODY` bytes (Slack's payloads are a few KiB), and at most
:data:`MAX_CONNECTIONS` connections are open at once (more are closed at accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.exposition import CONTENT_TYPE_LATEST

import bot.web
from bot import api
from bot.app import App, build
from bot.config import Config
from bot.errors import UserError
from bot.health import Readiness
from bot.jobs import Worker
from bot.remote_runs import POLL_EVERY as RUN_POLL_EVERY
from bot.remote_runs import RUN_KIND, perform_run

__all__ = ["make_web_app", "serve"]

log = logging.getLogger("codethread")

APP_KEY = web.AppKey("codethread", App)
READY_KEY = web.AppKey("readiness", Readiness)
DRAIN_SECONDS = 5.0  # on shutdown, how long answers in flight may take to finish
HEADER_SECONDS = 10.0
BODY_SECONDS = 10.0
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 512

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    checks = await request.app[READY_KEY].checks()
    ready = all(check.ok for check in checks)
    statuses = app.engines.status()
    body = {
        "status": "ok" if ready else "not ready",
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
        "default_model": next(st for st in statuses if st.default).spec.name,
        "models": {st.spec.name: str(st.readiness) for st in statuses if st.readiness},
    }
    return web.json_response(body, status=200 if ready else 503)


@web.middleware
async def _bounded_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body must arrive whole within :data:`BODY_SECONDS` (read here, so later reads get
    it from memory); one over :data:`MAX_BODY` (an API file upload: its own cap) is a 413,
    never read further. The larger cap is only for a caller the API knows: anyone else's
    upload is refused unread (``api.early_refusal``)."""
    refused = await api.early_refusal(request, MAX_BODY)
    if refused is not None:
        return refused
    limit = api.body_limit(request, MAX_BODY)
    if (request.content_length or 0) > limit:
        return web.json_response({"error": "request body too large"}, status=413)
    if request.can_read_body:
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.read()
        except TimeoutError:
            return web.json_response({"error": "request body too slow"}, status=408)
        if len(body) > limit:  # sent without a length
            return web.json_response({"error": "request body too large"}, status=413)
    return await handler(request)


class _Capped(RequestHandler):
    """Closes a connection at accept when :data:`MAX_CONNECTIONS` are open already."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if manager is not None and len(manager.connections) >= MAX_CONNECTIONS:
            transport.close()
            return
        super().connection_made(transport)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Capped(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """An app runner whose connections are capped (aiohttp has no setting for it: the
    server the app makes becomes a :class:`_Server`, which adds nothing but the cap)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server


async def _metrics(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    return web.Response(body=app.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_web_app(app: App) -> web.Application:
    """``/livez``, ``/readyz``, ``/metrics``, the API (``/api/``) and the adapters' routes
    (``/slack/events``)."""
    web_app = web.Application(
        client_max_size=max(MAX_BODY, api.MAX_FILE_BODY), middlewares=[_bounded_body]
    )
    web_app[APP_KEY] = app
    web_app[READY_KEY] = Readiness(app)
    pool, worker = app.runs.pool, app.worker
    app.metrics.watch(
        engines=app.engines.queues,
        sandbox=(lambda: (pool.active, pool.waiting)) if pool is not None else None,
        jobs=(lambda: worker.queued) if worker is not None else None,
    )
    web_app.router.add_get("/livez", _livez)
    web_app.router.add_get("/readyz", _readyz)
    web_app.router.add_get("/healthz", _readyz)
    web_app.router.add_get("/metrics", _metrics)
    api.mount(web_app, app)
    bot.web.mount(web_app, app)  # the page at /, signed in by link (bot/web)
    for adapter in app.adapters:
        web_app.router.add_routes(adapter.routes())
    return web_app


def runner(web_app: web.Application) -> web.AppRunner:
    """The runner ``serve`` uses: header and idle timeouts, capped connections, no access log
    (a request's path and agent are the client's words)."""
    return _Runner(web_app, keepalive_timeout=HEADER_SECONDS, lingering_time=1.0, access_log=None)


def stop_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (``serve``, ``worker`` and ``web`` run until then)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: Config, *, host: str, port: int) -> None:
    """Run until SIGINT or SIGTERM."""
    app = await build(config)
    adapters = app.adapters
    site_runner: web.AppRunner | None = None
    try:
        site_runner = runner(make_web_app(app))
        await site_runner.setup()
        try:
            await web.TCPSite(site_runner, host, port).start()
        except OSError as err:  # the port is taken, a privileged port, an unknown address
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"Cannot listen on {host}:{port}: the port is in use (another codethread "
                    "serve?). Stop that server or pick another --port."
                ) from None
            raise UserError(f"Cannot listen on {host}:{port}: {err.strerror or err}.") from None
        log.info("listening on http://%s:%d (/livez, /readyz, /metrics)", host, port)
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
        await stop_signal().wait()
        log.info("shutting down")
        start.cancel()
    finally:
        if app.worker is not None:  # no new claims; what runs gets DRAIN_SECONDS to finish
            await app.worker.stop(drain=DRAIN_SECONDS)
        for adapter in adapters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(adapter.drain(), DRAIN_SECONDS)
        if site_runner is not None:
            await site_runner.cleanup()
        await app.aclose()


async def work(config: Config, *, stop: asyncio.Event | None = None) -> None:
    """``codethread worker``: perform the sandbox runs that ``serve`` processes write down
    (:mod:`bot.remote_runs`), as many at once as this machine's pool, until SIGINT or
    SIGTERM (or ``stop`` is set). A machine whose sandbox does not work says why and claims
    nothing."""
    app = await build(dataclasses.replace(config, run_workers=False), adapters=False)
    try:
        await app.runs.prepare()
        pool = app.runs.pool
        if pool is None or not app.runs.can_run:
            reason = app.runs.disabled or "running snippets is off (run_snippets = false)"
            raise UserError(f"This machine cannot run snippets: {reason}")
        # every run it performs was written down by another process: look often
        worker = Worker(
            app.store,
            concurrency=pool.size,
            stale_after=config.job_stale_after,
            poll_every=RUN_POLL_EVERY,
        )
        worker.handle(RUN_KIND, functools.partial(perform_run, pool))
        worker.start()
        log.info("run worker %s: up to %d runs at once", worker.owner, pool.size)
        if stop is None:
            stop = stop_signal()
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await worker.stop(drain=DRAIN_SECONDS)
    finally:
        await app.aclose()


def _log_start(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("start-up failed: %s", error)
