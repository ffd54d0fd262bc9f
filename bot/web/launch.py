"""``codethread web``: the page for the terminal user, on this machine only.

It runs the same aiohttp app as ``codethread serve`` (page, API, health), without the chat
adapters, on 127.0.0.1, and opens a one-time login link for the terminal user (the caller
``codethread chat`` uses, so the page shows the sessions made there) in the browser
(``webbrowser``: ``$BROWSER`` when set), printing it too for a browser elsewhere on the
machine. It runs until Ctrl-C; run it again for a new link.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import webbrowser
from collections.abc import Callable

from aiohttp import web

from bot.adapters import console_caller
from bot.app import build
from bot.config import Config
from bot.errors import UserError
from bot.present import web as say
from bot.web.auth import store_login_url

__all__ = ["HOST", "launch"]

log = logging.getLogger("codethread.web")

HOST = "127.0.0.1"  # the terminal user's page is theirs alone: never another interface


async def launch(
    config: Config,
    *,
    port: int,
    echo: Callable[[str], None],
    open_browser: Callable[[str], bool] = webbrowser.open,
) -> None:
    """Serve the page on :data:`HOST`:``port`` (0: any free port) until SIGINT or SIGTERM;
    ``echo`` the login link and hand it to ``open_browser``."""
    from bot.server import make_web_app, runner, stop_signal

    app = await build(config, adapters=False)
    site_runner: web.AppRunner | None = None
    try:
        site_runner = runner(make_web_app(app))
        await site_runner.setup()
        try:
            await web.TCPSite(site_runner, HOST, port).start()
        except OSError as err:
            reason = None if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
            raise UserError(say.cannot_listen(HOST, port, reason)) from None
        bound = site_runner.addresses[0][1]
        start = asyncio.create_task(app.start())  # the sandbox probe, the default model
        url = await store_login_url(app.store, console_caller(), base=f"http://{HOST}:{bound}")
        echo(say.launched(url))
        if not await asyncio.to_thread(open_browser, url):
            echo(say.NO_BROWSER)
        await stop_signal().wait()
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start
    finally:
        if site_runner is not None:
            await site_runner.cleanup()
        await app.aclose()
