"""Signed login links and session cookies: what they let in, and everything they refuse."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.values import Caller
from bot.web import auth
from storage import Store

from ..conftest import both_backends

KEY = b"k" * 32
ALICE = Caller(platform="slack", workspace="T1", user="U_ALICE", channel="C1")
db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)


@pytest.fixture
async def store(db_target: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(db_target)
    yield opened
    await opened.close()


def token_of(url: str) -> str:
    assert "/login?t=" in url
    return url.split("/login?t=", 1)[1]


def resigned(value: str, **changes: object) -> str:
    """``value`` with some signed fields changed and the old signature kept (a forgery)."""
    body, _, mac = value.partition(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    fields.update(changes)
    raw = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + mac


async def test_a_link_signs_its_caller_in_once(store: Store) -> None:
    url = auth.login_url(KEY, ALICE, base="https://bot.example.com/")
    assert url.startswith("https://bot.example.com/login?t=")
    grant = await auth.read_link(KEY, store, token_of(url))
    assert grant is not None and grant.caller == ALICE
    assert await auth.read_link(KEY, store, token_of(url)) is None  # reused: refused


async def test_the_store_helper_signs_with_the_databases_key(store: Store) -> None:
    url = await auth.store_login_url(store, ALICE, base="http://127.0.0.1:1")
    key = await auth.site_key(store)
    assert key == await auth.site_key(store) and len(key) == 32  # made once, then the same
    grant = await auth.read_link(key, store, token_of(url))
    assert grant is not None and grant.caller == ALICE


async def test_expired_forged_and_altered_links_are_refused(store: Store) -> None:
    expired = token_of(auth.login_url(KEY, ALICE, base="", ttl=-1))
    assert await auth.read_link(KEY, store, expired) is None
    other_key = token_of(auth.login_url(b"x" * 32, ALICE, base=""))
    assert await auth.read_link(KEY, store, other_key) is None
    good = token_of(auth.login_url(KEY, ALICE, base=""))
    assert await auth.read_link(KEY, store, resigned(good, u="U_MALLORY")) is None
    assert await auth.read_link(KEY, store, resigned(good, e=4e9)) is None
    for junk in ("", ".", "abc", "a.b.c", "%%%.%%%", "é.é", "x" * 10_000):
        assert await auth.read_link(KEY, store, junk) is None
    assert await auth.read_link(KEY, store, good) is not None  # the refusals used nothing up


async def test_a_cookie_is_no_link_and_a_link_no_cookie(store: Store) -> None:
    cookie = auth.session_cookie(KEY, ALICE)
    assert await auth.read_link(KEY, store, cookie) is None
    link = token_of(auth.login_url(KEY, ALICE, base=""))
    assert auth.read_cookie(KEY, link) is None
    assert await auth.read_link(KEY, store, link) is not None


def test_a_cookie_names_its_caller_until_it_expires() -> None:
    trusted = Caller(platform="console", workspace="local", user="me", channel="t", trusted=True)
    value = auth.session_cookie(KEY, trusted, clock=lambda: 1000.0)
    grant = auth.read_cookie(KEY, value, clock=lambda: 1000.0 + auth.COOKIE_SECONDS - 1)
    assert grant is not None and grant.caller == trusted
    assert auth.read_cookie(KEY, value, clock=lambda: 1000.0 + auth.COOKIE_SECONDS) is None


def test_tampered_and_forged_cookies_are_refused() -> None:
    value = auth.session_cookie(KEY, ALICE)
    assert auth.read_cookie(KEY, value) is not None
    assert auth.read_cookie(KEY, resigned(value, u="U_BOB")) is None
    assert auth.read_cookie(KEY, resigned(value, t=True)) is None  # no self-made trust
    assert auth.read_cookie(KEY, resigned(value, k="session")) is not None  # same fields
    body, _, mac = value.partition(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert auth.read_cookie(KEY, f"{body}.{flipped}") is None
    assert auth.read_cookie(b"y" * 32, value) is None
    assert auth.read_cookie(KEY, value + "x") is None


def test_the_csrf_token_belongs_to_one_cookie() -> None:
    first = auth.read_cookie(KEY, auth.session_cookie(KEY, ALICE))
    second = auth.read_cookie(KEY, auth.session_cookie(KEY, ALICE))
    assert first is not None and second is not None
    token = auth.csrf_token(KEY, first)
    assert auth.valid_csrf(KEY, first, token)
    assert not auth.valid_csrf(KEY, second, token)  # another sign-in's page
    assert not auth.valid_csrf(b"z" * 32, first, token)
    for wrong in (None, "", token[:-1], token + "a", "ünïcode"):
        assert not auth.valid_csrf(KEY, first, wrong)


async def test_peeking_at_a_link_spends_nothing(store: Store) -> None:
    token = token_of(auth.login_url(KEY, ALICE, base=""))
    for _ in range(3):
        peeked = auth.peek_link(KEY, token)
        assert peeked is not None and peeked.caller == ALICE
    assert await auth.read_link(KEY, store, token) is not None  # still good: now spent
    assert auth.peek_link(KEY, token) is not None  # a peek cannot tell; read_link can
    assert await auth.read_link(KEY, store, token) is None
    assert auth.peek_link(KEY, token_of(auth.login_url(KEY, ALICE, base="", ttl=-1))) is None
    assert auth.peek_link(KEY, resigned(token, u="U_MALLORY")) is None
    assert auth.peek_link(KEY, auth.session_cookie(KEY, ALICE)) is None


async def test_a_signed_out_cookie_stays_out_on_every_replica(db_target: Path | str) -> None:
    """Signing out writes the cookie's seed down in the store: another process (a replica)
    refuses the cookie too, and other cookies of the same person are untouched."""
    first, replica = await Store.open(db_target), await Store.open(db_target)
    try:
        out = auth.read_cookie(KEY, auth.session_cookie(KEY, ALICE))
        other = auth.read_cookie(KEY, auth.session_cookie(KEY, ALICE))
        assert out is not None and other is not None
        assert not await auth.session_ended(replica, out)
        assert not await auth.session_ended(replica, out)  # asking counts nothing
        await auth.end_session(first, out)
        assert await auth.session_ended(replica, out) and await auth.session_ended(first, out)
        assert not await auth.session_ended(replica, other)
        await auth.end_session(first, out)  # twice: still ended, no error
        assert await auth.session_ended(replica, out)
        expired = auth.Grant(caller=ALICE, expires=0.0, nonce="old")
        await auth.end_session(first, expired)  # nothing left to end: nothing written
        assert not await auth.session_ended(replica, expired)
    finally:
        await first.close()
        await replica.close()
