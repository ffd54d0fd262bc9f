"""The page in a real headless Chromium: sign in by link, start a session and watch it stream,
adjust it, compare versions, run it in the real sandbox and see its output and picture; bad
links get the sign-in page, a link clicked on another site signs in despite SameSite, a link
for someone else asks first, and another site's form cannot sign anyone in.

One browser for the module; each test serves its own app on 127.0.0.1. Screenshots of the
main pages go to ``$CODETHREAD_TEST_ARTIFACTS`` (else pytest's temporary directory).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import App
from bot.present import web as say
from bot.server import make_web_app
from bot.values import Caller
from bot.web import auth, login_url, store_login_url
from engines import FakeEngine

from ..conftest import fenced
from .browser import Browser, GatedEngine, chromium, missing
from .conftest import Client

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

ME = Caller(platform="console", workspace="local", user="alice", channel="terminal", trusted=True)
#: a one-pixel PNG a snippet writes, to be shown on its run
DOT = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)
PICTURE = f"import base64\nopen('dot.png', 'wb').write(base64.b64decode('{DOT}'))\n"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CODETHREAD_TEST_ARTIFACTS")
    if not chosen:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(chosen) / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium() as made:
        yield made


@pytest.fixture
async def browser(driver: Any, shots: Path) -> AsyncIterator[Browser]:
    page = Browser(driver, shots)
    yield page
    await page.forget()


@pytest.fixture
def fake() -> FakeEngine:
    return GatedEngine(chunk_size=12)


def base(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def streams(browser: Browser, engine: GatedEngine, piece: str, rest: str) -> None:
    """The answer shows while it is written: ``piece`` (its start) is in the live box while
    the engine holds the ``rest``, which comes only after the gate opens."""
    live = await browser.until(lambda d: d.find_element("id", "live"))
    await browser.until(lambda d: piece in live.text)
    assert rest not in live.text
    await browser.shot("streaming-" + re.sub(r"\W", "", piece)[:12])
    engine.gate.set()


async def test_a_session_from_link_to_run(
    app: App, fake: GatedEngine, client: Client, browser: Browser
) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")
    await browser.problems()  # what earlier tests left in the console
    await browser.get(await store_login_url(app.store, ME, base=base(client)))
    who = await browser.text(".who")
    assert who == say.signed_in("alice", "console") and await browser.path() == "/"
    await browser.shot("home")

    # a new session, streamed
    fake.responder = lambda request: fenced("print('hello from the web')", note="A greeting.")
    fake.gate.clear()
    prompt = await browser.find("#prompt")
    await browser.do(prompt.send_keys, "greet the web")
    python = await browser.find('label.box input[value="python"]')
    assert await browser.do(python.is_selected)
    await browser.do((await browser.find('form[data-stream] button[type="submit"]')).click)
    await streams(browser, fake, "A greeting.", "hello from the web")
    await browser.until(lambda d: re.search(r"/s/\d+$", d.current_url))
    session_path = await browser.path()
    assert "hello from the web" in await browser.text("#code")
    assert "A greeting." in await browser.text(".note")
    await browser.shot("session")

    # adjust it, streamed: the next version writes a picture and prints
    fake.responder = lambda request: fenced(PICTURE + "print('hello again')")
    fake.gate.clear()
    text = await browser.find("#text")
    await browser.do(text.send_keys, "save a picture too")
    await browser.do((await browser.find('form[data-stream] button[type="submit"]')).click)
    await streams(browser, fake, "```python", "hello again")
    await browser.until(lambda d: "Version 2 of" in d.find_element("id", "version-header").text)
    assert "base64" in await browser.text("#code")

    # compare the two versions
    await browser.do((await browser.find("form.compare button")).click)
    await browser.until(lambda d: "/diff?from=1&to=2" in d.current_url)
    added = await browser.script("return document.querySelectorAll('#diff .gi').length")
    removed = await browser.script("return document.querySelectorAll('#diff .gd').length")
    assert added >= 3 and removed >= 1
    await browser.shot("diff")

    # run it in the sandbox: its output and its picture show
    await browser.get(base(client) + session_path)
    await browser.do((await browser.find('button[data-kind="run"]')).click)
    await browser.until(lambda d: d.find_elements("css selector", ".run"))
    assert "hello again" in await browser.text(".run pre.output")
    assert "Run of version 2 of" in await browser.text(".run .title")
    image = await browser.find(".artifacts img")
    await browser.until(lambda d: d.execute_script("return arguments[0].complete", image))
    assert await browser.script("return arguments[0].naturalWidth", image) == 1
    await browser.shot("run")
    assert await browser.problems() == []  # no CSP violation, no script error anywhere


async def test_bad_links_get_the_sign_in_page(app: App, client: Client, browser: Browser) -> None:
    key = await auth.site_key(app.store)
    for url in (
        login_url(key, ME, base=base(client), ttl=-1),
        login_url(b"not our key at all, not at all!!", ME, base=base(client)),
    ):
        await browser.get(url)
        assert say.LINK_REJECTED in await browser.text(".message")
        assert not await browser.do(browser.driver.get_cookies)
    await browser.shot("login")
    used = login_url(key, ME, base=base(client))
    await browser.get(used)
    await browser.until(lambda d: d.find_elements("css selector", ".who"))
    await browser.forget()
    await browser.get(used)
    assert say.LINK_REJECTED in await browser.text(".message")
    await browser.get(base(client) + "/")
    assert say.SIGNED_OUT in await browser.text(".message")


@asynccontextmanager
async def chat_site(*links: str) -> AsyncIterator[str]:
    """Another site (``localhost``, while the page is on 127.0.0.1): a chat app's page with
    ``links`` (``#go0``, ``#go1``…); its URL."""

    async def chat(request: web.Request) -> web.Response:
        page = "".join(
            f'<a id="go{n}" href="{link}">View history</a>' for n, link in enumerate(links)
        )
        return web.Response(text=page, content_type="text/html")

    other = web.Application()
    other.router.add_get("/", chat)
    async with TestServer(other, host="localhost") as served:  # localhost ≠ 127.0.0.1
        yield str(served.make_url("/"))


async def test_a_link_clicked_on_another_site_signs_in(app: App, browser: Browser) -> None:
    """Chat apps are other sites: a browser sends a SameSite=Strict cookie on no request of
    a navigation that started there (redirects included). The link's page (a GET, which
    spends nothing) posts the link from our own origin; the 303 after that same-origin POST
    is same-site, so the GET of ``/`` carries the new cookie."""
    seen: list[tuple[str, str, str | None, bool]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/static/"):
            fetch_site, cookie = (
                request.headers.get("Sec-Fetch-Site"),
                auth.COOKIE in request.cookies,
            )
            seen.append((request.method, request.path, fetch_site, cookie))
        return await handler(request)

    served = make_web_app(app)
    served.middlewares.insert(0, record)
    async with TestServer(served, host="127.0.0.1") as page:
        link = await store_login_url(app.store, ME, base=str(page.make_url("")).rstrip("/"))
        async with chat_site(link) as chat:
            await browser.get(chat)
            await browser.do((await browser.find("#go0")).click)
            who = await browser.text(".who")
    assert who == say.signed_in("alice", "console") and await browser.path() == "/"
    assert seen == [
        ("GET", "/login", "cross-site", False),  # the click: no cookie goes with it
        ("POST", "/login", "same-origin", False),  # the page's own form
        ("GET", "/", "same-origin", True),  # the 303: the new Strict cookie is sent
    ]


async def test_a_link_for_someone_else_asks_before_switching(
    app: App, client: Client, browser: Browser
) -> None:
    """Anyone can send alice's browser to their own link; signed in as alice, it does not
    become theirs without her say."""
    bob = Caller(platform="slack", workspace="T1", user="bob", channel="C1")
    await browser.get(await store_login_url(app.store, ME, base=base(client)))
    await browser.until(lambda d: d.find_elements("css selector", ".who"))
    before = await browser.do(browser.driver.get_cookies)
    async with chat_site(await store_login_url(app.store, bob, base=base(client))) as chat:
        await browser.get(chat)
        await browser.do((await browser.find("#go0")).click)
        asked = await browser.text(".message")
    assert say.switch_to(ME, bob) in asked
    assert await browser.do(browser.driver.get_cookies) == before  # still alice's cookie
    await browser.shot("switch")
    await browser.do((await browser.find('form[action="/login"] button')).click)
    who = await browser.until(lambda d: d.find_element("css selector", ".who").text)
    assert who == say.signed_in("bob", "slack")


async def test_another_sites_form_cannot_sign_anyone_in(
    app: App, client: Client, browser: Browser
) -> None:
    """Login CSRF: a page elsewhere that posts its own link to /login is refused (the
    browser says ``Sec-Fetch-Site: cross-site``), and no cookie is set."""
    key = await auth.site_key(app.store)
    token = login_url(key, ME, base="").split("?t=", 1)[1]

    async def evil(request: web.Request) -> web.Response:
        page = (
            f'<form id="f" method="post" action="{base(client)}/login">'
            f'<input type="hidden" name="t" value="{token}"><button id="go">Win</button></form>'
        )
        return web.Response(text=page, content_type="text/html")

    other = web.Application()
    other.router.add_get("/", evil)
    async with TestServer(other, host="localhost") as site:
        await browser.get(str(site.make_url("/")))
        await browser.do((await browser.find("#go")).click)
        refused = await browser.text(".message")
    assert say.LOGIN_ELSEWHERE in refused
    assert not await browser.do(browser.driver.get_cookies)
