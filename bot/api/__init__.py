"""The HTTP API under ``/api/``: sessions, turns, runs and files for programs, as JSON.

``mount(web_app, app)`` adds it to ``codethread serve``'s aiohttp app. Every call but
``GET /api/openapi.json`` needs ``Authorization: Bearer <token>`` (:mod:`.auth`); every
error is ``{"error": "<one line>"}`` (:mod:`.errors`). The API is one more surface of the
same core: the core's checks and words, the presenter's outcome, the caller's own sessions
only. :mod:`.sessions`, :mod:`.runs` and :mod:`.files` hold the handlers, one module per
noun; :mod:`.turns` answers a turn once or as server-sent events; :mod:`.openapi` describes
it all.

Every answer under ``/api/`` is ``Cache-Control: no-store`` (a caller's code and output, for
nobody's cache to keep) and ``nosniff`` (JSON is never read as a page), set as the answer's
headers go out (:func:`_private`: streamed answers too, and aiohttp's own refusals).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.api import files, openapi, runs, sessions
from bot.api.auth import COOKIE_AUTH, UNSAFE_METHODS, CookieAuth, CsrfRefused, authenticate
from bot.api.endpoint import API, MAX_JSON, Api
from bot.api.errors import ApiError, error_response, json_error
from bot.api.files import MAX_FILE_BODY
from bot.api.surface import ApiSurface
from bot.api.turns import Turns
from bot.app import App
from bot.present import api as say

__all__ = [
    "API",
    "COOKIE_AUTH",
    "MAX_FILE_BODY",
    "MAX_JSON",
    "UNSAFE_METHODS",
    "Api",
    "ApiSurface",
    "CookieAuth",
    "CsrfRefused",
    "body_limit",
    "early_refusal",
    "mount",
    "routes",
]

#: how long turns in flight may take to finish when the server stops
DRAIN_SECONDS = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_FILE_PUT = re.compile(r"/api/sessions/\d+/files/[^/]+")


def routes() -> list[web.RouteDef]:
    return [*openapi.routes(), *sessions.routes(), *runs.routes(), *files.routes()]


def body_limit(request: web.BaseRequest, default: int) -> int:
    """The most bytes ``request``'s body may hold: a file's PUT up to :data:`MAX_FILE_BODY`,
    anything else ``default`` (the server's own cap)."""
    if request.method == "PUT" and _FILE_PUT.fullmatch(request.rel_url.raw_path):
        return max(default, MAX_FILE_BODY)
    return default


async def early_refusal(request: web.Request, default: int) -> web.Response | None:
    """The answer for a request that may send more than ``default`` bytes (a file's PUT)
    but proves no caller: its 401 (or 403), before its body is read. The server reads bodies
    before any handler runs (to bound their time), and must not read megabytes for anyone
    who can reach it. None: go on (another request, or a caller who is signed in)."""
    if body_limit(request, default) <= default:
        return None
    try:
        await authenticate(request, request.config_dict[API].app.store)
    except ApiError as err:
        return error_response(err)
    return None


async def _private(request: web.Request, response: web.StreamResponse) -> None:
    """An answer under ``/api/`` is for its caller alone, and is what its type says."""
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals under ``/api/`` (no such route, wrong method, body too large)
    as the API's JSON errors, so that a client parses every error the same way."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400 or not request.path.startswith("/api/"):
            raise
        if isinstance(err, web.HTTPMethodNotAllowed):
            message = say.wrong_method(request.method, request.path, list(err.allowed_methods))
            return json_error(405, message, headers={"Allow": ",".join(err.allowed_methods)})
        if isinstance(err, web.HTTPRequestEntityTooLarge):
            return json_error(413, say.too_large(body_limit(request, MAX_JSON)))
        if err.status == 404:
            return json_error(404, say.no_route(request.method, request.path))
        return json_error(err.status, err.reason)


def mount(web_app: web.Application, app: App) -> None:
    """Add the API's routes to ``web_app`` (before it starts); shutdown lets its turns in
    flight finish for :data:`DRAIN_SECONDS`, then cancels them."""
    turns = Turns(app.presenter)
    web_app[API] = Api(app=app, turns=turns)
    web_app.middlewares.append(_json_errors)
    web_app.on_response_prepare.append(_private)
    web_app.router.add_routes(routes())

    async def drain(_: web.Application) -> None:
        await turns.aclose(DRAIN_SECONDS)

    web_app.on_shutdown.append(drain)
