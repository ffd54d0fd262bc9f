"""Who is calling: a bearer token, or (for the web page) whatever its cookie hook says.

An API client sends ``Authorization: Bearer <token>`` (a token from ``codethread tokens
create --user NAME``); :func:`bot.tokens.verify` finds the live token, and the caller is its
user on the ``api`` platform. A missing, malformed, unknown, expired or revoked token is a
401 with ``WWW-Authenticate: Bearer``; the token itself never reaches a log.

The web page (served by the same app, written elsewhere) signs its users in with a cookie.
It installs a :data:`COOKIE_AUTH` hook on the web app; the hook is asked only when no
``Authorization`` header is sent, so a bearer client never depends on cookies. A cookie is
sent by the browser on its own, so it proves nothing about who wrote a request: the hook must
also check, for unsafe methods (:data:`UNSAFE_METHODS`), the ``X-CSRF-Token`` header its page
sends, and raise :class:`CsrfRefused` when it is missing or wrong (a 403 that says so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot import tokens
from bot.api.errors import ApiError
from bot.present import api as say
from bot.values import Caller
from storage import Store

__all__ = ["COOKIE_AUTH", "UNSAFE_METHODS", "CookieAuth", "CsrfRefused", "authenticate"]

#: methods that change something: a cookie caller's request needs its X-CSRF-Token
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CookieAuth = Callable[[web.Request], Awaitable[Caller | None]]

#: The web page's sign-in hook, set on the aiohttp app by whoever serves the page.
#:
#: It receives the request and returns the signed-in :class:`~bot.values.Caller`, or None
#: when the request carries no valid session cookie (a 401). For a method in
#: :data:`UNSAFE_METHODS` it must also check the ``X-CSRF-Token`` header against the one its
#: page was given (for instance, an HMAC of the cookie's session with a key from
#: ``store.secret``), and raise :class:`CsrfRefused` when it does not match (a 403).
COOKIE_AUTH: web.AppKey[CookieAuth] = web.AppKey("codethread_cookie_auth")

_CHALLENGE = 'Bearer realm="codethread"'
_INVALID = 'Bearer realm="codethread", error="invalid_token"'


class CsrfRefused(Exception):
    """Raised by a :data:`COOKIE_AUTH` hook: an unsafe request without the page's valid
    ``X-CSRF-Token``. Its message (if any) is what the client reads; the default says to
    reload the page."""

    def __init__(self, message: str = say.CSRF) -> None:
        super().__init__(message)


#: a request's caller once found (a large upload is asked twice: see authenticate)
_CALLER: web.RequestKey[Caller] = web.RequestKey("codethread_caller", Caller)


async def authenticate(request: web.Request, store: Store) -> Caller:
    """The caller of ``request``; raises :class:`~bot.api.errors.ApiError` (401 or 403).
    Found once per request: the server's early check of a large upload and its handler
    share the answer (one token lookup, one cookie check)."""
    if _CALLER in request:
        return request[_CALLER]
    caller = await _find(request, store)
    request[_CALLER] = caller
    return caller


async def _find(request: web.Request, store: Store) -> Caller:
    header = request.headers.get("Authorization")
    if header is None:
        hook = request.config_dict.get(COOKIE_AUTH)
        if hook is not None:
            try:
                caller = await hook(request)
            except CsrfRefused as err:
                raise ApiError(403, str(err) or say.CSRF) from None
            if caller is not None:
                return caller
        raise ApiError(401, say.NO_TOKEN, headers={"WWW-Authenticate": _CHALLENGE})
    scheme, _, text = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise ApiError(401, say.NO_TOKEN, headers={"WWW-Authenticate": _CHALLENGE})
    token = await tokens.verify(store, text.strip())
    if token is None:
        raise ApiError(401, say.BAD_TOKEN, headers={"WWW-Authenticate": _INVALID})
    return Caller(platform="api", workspace="api", user=token.user)
