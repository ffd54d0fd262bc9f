"""The page on the real aiohttp app (the one ``serve`` runs), served on 127.0.0.1.

``client`` is an aiohttp test client of ``make_web_app(app)``; :func:`sign_in` uses a real
login link as a browser does (its page, then the form that page posts), so the client holds
the real cookie, and returns the CSRF token of the page. :func:`login_form` reads the fields
a login link's page posts.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.server import make_web_app
from bot.values import Caller
from bot.web import store_login_url

Client = TestClient[Any, Any]
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_LOGIN_FORM = re.compile(
    r'<form method="post" action="/login"( data-autosubmit)?>(.*?)</form>', re.S
)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        yield client


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def login_form(page: str, *, autosubmit: bool = True) -> dict[str, str]:
    """The fields of the form a login link's page posts to ``/login`` (the page's script
    posts it on its own when ``autosubmit``; else the person must press Continue)."""
    found = _LOGIN_FORM.search(page)
    assert found, "the page has no login form"
    assert bool(found.group(1)) == autosubmit, found.group(0)
    return dict(_HIDDEN.findall(found.group(2)))


async def sign_in(client: Client, app: App, caller: Caller) -> str:
    """Sign ``client`` in as ``caller`` by a login link; the page's CSRF token."""
    client.session.cookie_jar.clear()
    url = await store_login_url(app.store, caller, base="")
    response = await client.get(url)
    assert response.status == 200, await response.text()
    home = await client.post("/login", data=login_form(await response.text()))
    assert home.status == 200 and str(home.url.path) == "/"
    return csrf_of(await home.text())
