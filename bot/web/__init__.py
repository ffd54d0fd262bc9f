"""The web page: a person's sessions in a browser, on the same app ``codethread serve`` runs.

Server-rendered HTML (:mod:`.pages`, :mod:`.shapes`, templates in ``templates/``), code
highlighted by Pygments (:mod:`.render`), one small script for the live answer (``static/``)
that talks to the JSON API (:mod:`bot.api`) with the page's cookie. People sign in by a
one-time signed link the bot gives them (:mod:`.auth`): chat users from a version's View
history button, the terminal user from ``codethread web`` (:mod:`.launch`).

:func:`mount` adds the page to the server's aiohttp app, with the cookie check the API asks
when a request has no bearer token (``bot.api.COOKIE_AUTH``). Importing this package costs
only :mod:`.auth` (the composition root signs View history links with it, also for the CLI):
the page itself, aiohttp and Jinja2 load with :func:`mount`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.web.auth import login_url, store_login_url

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App

__all__ = ["login_url", "mount", "store_login_url"]


def mount(web_app: web.Application, app: App) -> None:
    """The page's routes on ``web_app``, and its sign-in check for the API's requests."""
    from bot.api import COOKIE_AUTH
    from bot.web.pages import routes
    from bot.web.site import SITE, Site, cookie_caller

    web_app[SITE] = Site(app)
    web_app[COOKIE_AUTH] = cookie_caller
    web_app.router.add_routes(routes())
