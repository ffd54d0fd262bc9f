"""What every page handler shares: the app, the signing key, who is signed in, the headers.

:class:`Site` is stored on the aiohttp application (:data:`SITE`). It fetches the signing key
from the store once (every replica gets the same one) and answers, for a request, who is
signed in (:meth:`Site.visitor`: the cookie checked, not signed out, and for a form that
changes something its CSRF field too). :func:`cookie_caller` is the same check for the JSON
API (``bot.api``): the API asks it when a request carries no bearer token, so the page's
script can call the API with the cookie and the ``X-CSRF-Token`` header.

Every answer of the page carries :data:`SECURITY_HEADERS`: a Content-Security-Policy that
allows only our own scripts, styles and images (no inline script or style at all, so text
that slipped through escaping still could not run), no ``<base>`` (it would move every
relative URL), forms posted to us only, no framing, no MIME sniffing, and no Referer (a login
link's token never leaves in one). ``script-src 'self'`` cannot be narrowed to ``/static/``
in every browser; what keeps it tight is that nothing else of this origin is served as a
script type (a run's files are pictures or ``application/octet-stream``: ``bot.api.runs``).
The login link's page alone allows a Referer to our own origin (:data:`LOGIN_REFERRER`):
under ``no-referrer`` a browser sends ``Origin: null`` with a form, and the login form needs
its real origin (:meth:`Site.same_origin`, :meth:`Site.https`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from bot.values import Caller
from bot.web.auth import (
    COOKIE,
    Grant,
    csrf_token,
    read_cookie,
    session_ended,
    site_key,
    valid_csrf,
)

if TYPE_CHECKING:
    from bot.app import App

__all__ = [
    "LOGIN_REFERRER",
    "SAFE_METHODS",
    "SECURITY_HEADERS",
    "SITE",
    "Site",
    "Visitor",
    "cookie_caller",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: the login link's page: its form's Origin is real, and nothing leaves for other sites
LOGIN_REFERRER: Mapping[str, str] = {"Referrer-Policy": "same-origin"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


class CsrfMissing(Exception):
    """A request that would change something came without a valid CSRF token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Visitor:
    """A signed-in request: who, and the CSRF token the page gives back to them."""

    grant: Grant
    csrf: str

    @property
    def caller(self) -> Caller:
        return self.grant.caller


class Site:
    def __init__(self, app: App) -> None:
        self.app = app
        self._key: bytes | None = None
        self._lock = asyncio.Lock()

    async def key(self) -> bytes:
        """The signing key (the store's shared secret), fetched on first use."""
        if self._key is None:
            async with self._lock:
                if self._key is None:
                    self._key = await site_key(self.app.store)
        return self._key

    async def grant(self, request: web.Request) -> Grant | None:
        """The request's valid session cookie, if any: signed by us, unexpired, and not
        signed out (one peek at the store, shared by the replicas)."""
        value = request.cookies.get(COOKIE, "")
        grant = read_cookie(await self.key(), value) if value else None
        if grant is None or await session_ended(self.app.store, grant):
            return None
        return grant

    def https(self, request: web.Request) -> bool:
        """Whether the browser reached us over https (so the cookie is ``Secure``).

        A browser's form names its page's origin (``Origin``): that decides when it does (an
        ``http://`` page could not keep a Secure cookie, e.g. ``codethread web`` on
        127.0.0.1 with an https public URL configured). Else: directly over TLS, through a
        proxy that says so (``X-Forwarded-Proto``), or at a configured ``https://`` public
        URL (behind a proxy that does not say so)."""
        origin = request.headers.get("Origin", "").strip().lower()
        if origin.startswith(("http://", "https://")):
            return origin.startswith("https://")
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        public = self.app.config.public_url or ""
        return request.secure or forwarded == "https" or public.startswith("https://")

    def same_origin(self, request: web.Request) -> bool:
        """Whether a browser's POST came from one of our own pages (login CSRF: another site
        must not sign the person in as someone else).

        Browsers say so in ``Sec-Fetch-Site`` (anything but ``same-origin`` is refused); an
        older one only in ``Origin``, which must then be ours: the request's own origin, or
        the configured public URL's (behind a proxy the two may differ); ``null`` is not. A
        request with neither header is no browser's form, so nobody's cookie is at stake:
        allowed."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site.strip().lower() == "same-origin"
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        scheme = "https" if self.https(request) else "http"
        ours = {f"{scheme}://{request.host}", f"{request.scheme}://{request.host}"}
        if self.app.config.public_url:
            public = urlsplit(self.app.config.public_url)
            ours.add(f"{public.scheme}://{public.netloc}")
        return origin.strip().lower() in {value.lower() for value in ours}

    async def visitor(self, request: web.Request, *, form: bool = False) -> Visitor | None:
        """Who is signed in; with ``form``, a state-changing form whose ``csrf`` field must
        be the page's token (:class:`CsrfMissing` otherwise)."""
        grant = await self.grant(request)
        if grant is None:
            return None
        key = await self.key()
        if form:
            fields = await request.post()
            sent = fields.get(CSRF_FIELD)
            if not valid_csrf(key, grant, sent if isinstance(sent, str) else None):
                raise CsrfMissing()
        return Visitor(grant=grant, csrf=csrf_token(key, grant))


SITE = web.AppKey("codethread_web", Site)


async def cookie_caller(request: web.Request) -> Caller | None:
    """The caller a request's session cookie names, for the JSON API (``COOKIE_AUTH``).

    None without a valid cookie (the API then answers 401). A request that changes something
    (any method but GET, HEAD, OPTIONS) must also send the page's CSRF token in the
    ``X-CSRF-Token`` header; without it the API's ``CsrfRefused`` is raised (403): the cookie
    alone would let another site's form act for the person.
    """
    from bot.api.auth import CsrfRefused  # the API's error; the API imports this module lazily

    site = request.config_dict[SITE]
    grant = await site.grant(request)
    if grant is None:
        return None
    if request.method not in SAFE_METHODS and not valid_csrf(
        await site.key(), grant, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfRefused()
    return grant.caller
