"""Getting into the web page: signed login links, the session cookie, and the CSRF token.

There are no passwords. Whoever can already talk to the bot as someone (a chat user, the
terminal user) gets a **login link** from it: ``/login?t=<token>``, where the token is the
caller (platform, workspace, user, channel, trusted), an expiry ten minutes ahead and a random
nonce, signed with HMAC-SHA256. The key is one shared secret per database
(``store.secret("web", ...)``), so every replica signs and checks with the same key, and a
rotated database (a new key) ends every link and cookie at once.

* A link works **once**: its nonce is claimed in the store (``claim_delivery``), across
  replicas, so a link read in a log or a browser history after use is worth nothing. It is
  **short-lived** (the expiry is inside the signature), and **cannot be altered** (a changed
  user breaks the signature). Opening it (a GET) only *looks* at it (:func:`peek_link`):
  link previewers, mail scanners and prefetching fetch links on their own, and must neither
  spend it nor get the cookie; the page it shows posts it back, and that POST spends it
  (:func:`read_link`).
* A used link becomes a **session cookie** ``codethread_session``: the same caller, an expiry
  twelve hours ahead and a random CSRF seed, signed the same way (a distinct ``kind``, so a
  link is never a cookie nor a cookie a link). It is HttpOnly (the page's script cannot read
  it), SameSite=Strict (another site's page cannot make the browser send it) and Secure when
  the page came over https. Nothing is stored per cookie: any replica checks it with the key,
  but signing out writes the cookie's seed down (:func:`end_session`), so a copy of a
  signed-out cookie is refused for the rest of its twelve hours (:func:`session_ended`).
* The **CSRF token** is an HMAC of the cookie's seed. The page carries it (a meta tag, hidden
  form fields); a state-changing request must send it back (header ``X-CSRF-Token``, or the
  form's ``csrf`` field). Another site's page can make the browser send the cookie only where
  SameSite fails (old browsers), and even then it cannot read the token from our page.

Signed values are ``<base64url JSON>.<base64url HMAC>``: cookie-safe and URL-safe as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from bot.values import Caller
from storage import Store

__all__ = [
    "COOKIE",
    "COOKIE_SECONDS",
    "LINK_SECONDS",
    "Grant",
    "csrf_token",
    "end_session",
    "login_url",
    "peek_link",
    "read_cookie",
    "read_link",
    "session_cookie",
    "session_ended",
    "site_key",
    "store_login_url",
    "valid_csrf",
]

#: the cookie's name (the brief's contract: `codethread_session`)
COOKIE = "codethread_session"
LINK_SECONDS = 600.0  # a login link is good for ten minutes
COOKIE_SECONDS = 12 * 3600.0  # a signed-in page for twelve hours
SECRET_NAME = "web"  # the store's shared secret that signs links and cookies
_MAX_SIGNED = 4096  # longer than any value we sign: refused unread

Kind = Literal["login", "session"]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A checked signed value: who it lets in, until when, and its one random part (the
    nonce of a link; the CSRF seed of a cookie)."""

    caller: Caller
    expires: float  # unix seconds
    nonce: str


async def site_key(store: Store) -> bytes:
    """The key that signs links and cookies: made once per database, shared by replicas."""
    return await store.secret(SECRET_NAME, lambda: secrets.token_bytes(32))


# -- signing -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def _sign(key: bytes, kind: Kind, caller: Caller, expires: float, nonce: str) -> str:
    fields = {
        "k": kind,
        "p": caller.platform,
        "w": caller.workspace,
        "u": caller.user,
        "c": caller.channel,
        "t": caller.trusted,
        "e": round(expires, 3),
        "n": nonce,
    }
    body = _b64(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(key, body))}"


def _check(key: bytes, kind: Kind, value: str, now: float) -> Grant | None:
    """The grant ``value`` carries when it is ours, of ``kind``, unexpired; else None."""
    if not value or len(value) > _MAX_SIGNED or value.count(".") != 1:
        return None
    body, _, mac = value.partition(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(key, body)):
            return None
        fields: Any = json.loads(_unb64(body))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    if not isinstance(fields, dict) or fields.get("k") != kind:
        return None
    try:
        caller = Caller(
            platform=_text(fields["p"]),
            workspace=_text(fields["w"]),
            user=_text(fields["u"]),
            channel=_text(fields["c"]),
            trusted=fields["t"] is True,
        )
        expires, nonce = float(fields["e"]), _text(fields["n"])
    except (KeyError, TypeError, ValueError):
        return None
    if expires <= now or not caller.user:
        return None
    return Grant(caller=caller, expires=expires, nonce=nonce)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


# -- login links -------------------------------------------------------------------------------


def login_url(
    key: bytes, caller: Caller, *, base: str, ttl: float = LINK_SECONDS, clock: Clock = time.time
) -> str:
    """A one-time link that signs ``caller`` in to the page at ``base`` (e.g.
    ``https://bot.example.com``) for the next ``ttl`` seconds."""
    token = _sign(key, "login", caller, clock() + ttl, secrets.token_urlsafe(16))
    return f"{base.rstrip('/')}/login?{urlencode({'t': token})}"


async def store_login_url(
    store: Store, caller: Caller, *, base: str, ttl: float = LINK_SECONDS
) -> str:
    """:func:`login_url` with the database's key (for the chat adapters' View history)."""
    return login_url(await site_key(store), caller, base=base, ttl=ttl)


def peek_link(key: bytes, token: str, *, clock: Clock = time.time) -> Grant | None:
    """The grant of a login link's token when it is ours, unaltered and unexpired, without
    spending it (a link used before still passes: only :func:`read_link` can tell)."""
    return _check(key, "login", token, clock())


async def read_link(
    key: bytes, store: Store, token: str, *, clock: Clock = time.time
) -> Grant | None:
    """The grant of a login link's token: None when forged, altered, expired, or used before
    (the nonce is claimed here, so a second use, on any replica, fails)."""
    now = clock()
    grant = _check(key, "login", token, now)
    if grant is None:
        return None
    ttl = grant.expires - now + 60  # the claim outlives the link, which then fails anyway
    if not await store.claim_delivery(f"web:login:{grant.nonce}", ttl=ttl):
        return None
    return grant


# -- the session cookie ----------------------------------------------------------------------------


def session_cookie(
    key: bytes, caller: Caller, *, ttl: float = COOKIE_SECONDS, clock: Clock = time.time
) -> str:
    """The signed cookie value for ``caller``, good for ``ttl`` seconds, with a fresh seed."""
    return _sign(key, "session", caller, clock() + ttl, secrets.token_urlsafe(16))


def read_cookie(key: bytes, value: str, *, clock: Clock = time.time) -> Grant | None:
    """The grant of a session cookie; None when absent, forged, altered or expired."""
    return _check(key, "session", value, clock())


def _ended_key(grant: Grant) -> str:
    return f"web:logout:{grant.nonce}"


async def end_session(store: Store, grant: Grant, *, clock: Clock = time.time) -> None:
    """Sign ``grant``'s cookie out for good, on every replica.

    The cookie is stateless, so deleting it in the browser would leave a copy (a stolen one, a
    second tab's jar) good for hours. The store has no plain "remember this key" call but its
    rate limiter: one hit on ``web:logout:<seed>`` with a window of the cookie's remaining
    lifetime is exactly "this seed ended, until the cookie would have expired anyway" (the
    store prunes it then). :func:`session_ended` peeks at that window."""
    remaining = grant.expires - clock()
    if remaining > 0:
        await store.rate_hit(_ended_key(grant), window=remaining, limit=1)


async def session_ended(store: Store, grant: Grant) -> bool:
    """Whether ``grant``'s cookie was signed out (:func:`end_session`).

    A peek (``count=False``): with ``limit=1`` the store refuses (answers a number) exactly
    when the sign-out's hit is inside the window, and counts nothing either way. The window is
    a cookie's whole lifetime (:data:`COOKIE_SECONDS`, what the page signs them for), which no
    sign-out of a still valid cookie can be older than."""
    refused = await store.rate_hit(_ended_key(grant), window=COOKIE_SECONDS, limit=1, count=False)
    return refused is not None


def csrf_token(key: bytes, grant: Grant) -> str:
    """The token a page signed in with ``grant`` sends back with every change it asks for."""
    return _b64(_mac(key, f"csrf.{grant.nonce}"))


def valid_csrf(key: bytes, grant: Grant, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token of ``grant`` (compared in constant time)."""
    if not token:
        return False
    return hmac.compare_digest(csrf_token(key, grant).encode(), token.encode("utf-8", "replace"))
