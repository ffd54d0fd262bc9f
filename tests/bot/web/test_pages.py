"""The page over HTTP: signing in, the headers, whose sessions show, the forms and the API's
cookie access (the browser tests in test_browser.py drive the same pages in Chromium)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, build
from bot.config import Config, PublicUrl
from bot.errors import SessionNotFound
from bot.present import web as say
from bot.present import words
from bot.server import make_web_app
from bot.values import Action, Caller
from bot.web import auth, login_url
from engines import FakeEngine
from storage import SessionKey

from ..conftest import collect, fenced
from .conftest import Client, csrf_of, login_form, sign_in

ALICE = Caller(platform="slack", workspace="T1", user="U_ALICE", channel="C1")
BOB = Caller(platform="slack", workspace="T1", user="U_BOB", channel="C1")
ALICE_ELSEWHERE = Caller(platform="discord", workspace="G9", user="U_ALICE", channel="D1")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_threads = itertools.count()


async def session_of(app: App, fake: FakeEngine, caller: Caller, *codes: str) -> int:
    """A session of ``caller``'s whose versions have ``codes``, one turn each."""
    answers = iter(codes)
    fake.responder = lambda request: fenced(next(answers), note="Here you are.")
    key = SessionKey(
        platform=caller.platform, workspace=caller.workspace, channel="C1",
        thread=f"t{next(_threads)}",
    )  # fmt: skip
    session = await app.service.start(caller=caller, key=key, prompt=f"task {codes[0][:20]}")
    for number, _ in enumerate(codes, 1):
        await collect(app.service.turn(session, caller, f"change {number}"))
    return session.id


def secured(response: object, *, referrer: str = "no-referrer") -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == referrer


async def test_pages_need_a_sign_in_and_carry_strict_headers(client: Client) -> None:
    for path in ("/", "/s/1", "/s/1/diff?from=1&to=2", "/s/1/download"):
        response = await client.get(path)
        assert response.status == 401, path
        secured(response)
        assert say.SIGNED_OUT in await response.text()
        assert "<script src=" in await response.text()  # only the page's own file
    static = await client.get("/static/app.css")
    assert static.status == 200 and static.content_type == "text/css"
    secured(static)
    assert "immutable" in static.headers["Cache-Control"]
    script = await client.get("/static/app.js")
    assert script.content_type == "text/javascript"
    code = await client.get("/static/code.css")
    assert ".highlight .k" in await code.text()  # Pygments' classes, not inline styles
    assert (await client.get("/static/nothing.js")).status == 404


async def test_a_link_sets_a_strict_cookie_once(app: App, client: Client) -> None:
    key = await auth.site_key(app.store)
    url = login_url(key, ALICE, base="")
    opened = await client.get(url)
    assert opened.status == 200 and "Set-Cookie" not in opened.headers
    secured(opened, referrer="same-origin")  # its form's Origin must be real, not "null"
    assert opened.headers["Cache-Control"] == "no-store"  # the page holds the token
    fields = login_form(await opened.text())
    assert fields == {"t": url.split("?t=", 1)[1]}
    assert say.signing_in(ALICE) in await opened.text()
    response = await client.post("/login", data=fields, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    secured(response)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"):
        assert part in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert response.headers["Cache-Control"] == "no-store"
    home = await client.get("/")
    assert home.status == 200 and say.signed_in("U_ALICE", "slack") in await home.text()
    client.session.cookie_jar.clear()
    again = await client.post("/login", data=fields, allow_redirects=False)
    assert again.status == 403 and say.LINK_REJECTED in await again.text()
    assert "Set-Cookie" not in again.headers
    behind_https = await client.post(
        "/login",
        data={"t": login_url(key, ALICE, base="").split("?t=", 1)[1]},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "Secure" in behind_https.headers["Set-Cookie"]


async def test_opening_a_link_spends_nothing(app: App, client: Client) -> None:
    """Previewers, scanners and prefetching GET links: that neither signs in nor uses the
    link up; only the page's own POST does."""
    url = login_url(await auth.site_key(app.store), ALICE, base="")
    for _ in range(3):
        peeked = await client.get(url)
        assert peeked.status == 200 and "Set-Cookie" not in peeked.headers
    assert (await client.head(url)).status == 405
    assert (await client.get("/")).status == 401  # nobody signed in
    signed = await client.post("/login", data=login_form(await peeked.text()))
    assert signed.status == 200 and say.signed_in("U_ALICE", "slack") in await signed.text()
    posted_again = await client.post("/login", data=login_form(await peeked.text()))
    assert posted_again.status == 200  # the browser's Back: still alice, nothing refused
    assert (await client.post("/login", data={"t": "junk"})).status == 403


async def test_login_posts_from_other_sites_are_refused(app: App, client: Client) -> None:
    """Login CSRF: another site's form must not sign the visitor in as whoever's link it
    holds; the refusal spends nothing."""
    fields = {"t": login_url(await auth.site_key(app.store), BOB, base="").split("?t=", 1)[1]}
    own = str(client.make_url("")).rstrip("/")
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "cross-site", "Origin": own},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        refused = await client.post("/login", data=fields, headers=headers)
        assert refused.status == 403, headers
        assert say.LOGIN_ELSEWHERE in await refused.text() and "Set-Cookie" not in refused.headers
        secured(refused)
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": own}):
        client.session.cookie_jar.clear()
        link = login_url(await auth.site_key(app.store), BOB, base="").split("?t=", 1)[1]
        taken = await client.post("/login", data={"t": link}, headers=headers)
        assert taken.status == 200 and say.signed_in("U_BOB", "slack") in await taken.text()
    client.session.cookie_jar.clear()
    first = await client.post("/login", data=fields, headers={"Sec-Fetch-Site": "same-origin"})
    assert first.status == 200  # the refused link was still good


async def test_a_link_for_someone_else_asks_first(app: App, client: Client) -> None:
    """A browser signed in as alice, sent (by anyone) to bob's link, is not switched to bob
    silently: the page asks, and only a press that says so switches."""
    await sign_in(client, app, ALICE)
    url = login_url(await auth.site_key(app.store), BOB, base="")
    opened = await client.get(url)
    page = await opened.text()
    fields = login_form(page, autosubmit=False)
    assert fields["switch"] == "1"
    assert say.switch_to(ALICE, BOB) in page and say.LABELS["stay"] in page
    # the GET of a link clicked on another site carries no Strict cookie, so its page posts
    # the link at once; the POST (same-origin) carries alice's cookie: it asks there too
    asked = await client.post("/login", data={"t": fields["t"]}, allow_redirects=False)
    assert asked.status == 200 and "Set-Cookie" not in asked.headers
    assert login_form(await asked.text(), autosubmit=False) == fields
    still = await client.get("/")
    assert say.signed_in("U_ALICE", "slack") in await still.text()
    switched = await client.post("/login", data=fields)
    assert switched.status == 200 and say.signed_in("U_BOB", "slack") in await switched.text()


async def test_an_https_public_url_makes_the_cookie_secure(
    tmp_path: Path, fake: FakeEngine
) -> None:
    """Behind a proxy that does not say X-Forwarded-Proto, the configured https public URL
    still makes the cookie Secure, and its origin counts as ours; a browser on a plain http
    page gets a cookie it can keep."""
    config = Config(
        db_path=tmp_path / "https.db", model="fake:echo",
        public_url=PublicUrl("https://bot.example.com"),
    )  # fmt: skip
    other = await build(config, engine_factory=lambda spec: fake)
    try:
        async with TestClient(TestServer(make_web_app(other), host="127.0.0.1")) as client:
            token = login_url(await auth.site_key(other.store), ALICE, base="").split("?t=")[1]
            response = await client.post(
                "/login",
                data={"t": token},
                headers={"Origin": "https://bot.example.com"},
                allow_redirects=False,
            )
            assert response.status == 303
            assert "Secure" in response.headers["Set-Cookie"]
            # `codethread web` with the same config: the browser's page is plain http on
            # 127.0.0.1, where a Secure cookie could not be kept; its Origin says so
            token = login_url(await auth.site_key(other.store), ALICE, base="").split("?t=")[1]
            local = str(client.make_url("")).rstrip("/")
            response = await client.post(
                "/login", data={"t": token}, headers={"Origin": local}, allow_redirects=False
            )
            assert response.status == 303
            assert "Secure" not in response.headers["Set-Cookie"]
    finally:
        await other.aclose()


async def test_expired_forged_and_tampered_links_and_cookies_get_the_login_page(
    app: App, client: Client
) -> None:
    key = await auth.site_key(app.store)
    for url in (
        login_url(key, ALICE, base="", ttl=-1),
        login_url(b"not the key" * 3, ALICE, base=""),
        login_url(key, ALICE, base="")[:-3] + "abc",
        "/login",
    ):
        response = await client.get(url)
        assert response.status == 403 and say.LINK_REJECTED in await response.text()
    client.session.cookie_jar.update_cookies(
        {auth.COOKIE: auth.session_cookie(b"forged" * 6, ALICE)}
    )
    assert (await client.get("/")).status == 401
    client.session.cookie_jar.update_cookies({auth.COOKIE: auth.session_cookie(key, ALICE, ttl=-1)})
    assert (await client.get("/")).status == 401


async def test_only_the_callers_own_sessions_show(
    app: App, fake: FakeEngine, client: Client
) -> None:
    mine = await session_of(app, fake, ALICE, "print('mine')")
    bobs = await session_of(app, fake, BOB, "print('bob')")
    await session_of(app, fake, ALICE_ELSEWHERE, "print('on discord')")
    csrf = await sign_in(client, app, ALICE)
    page = await (await client.get("/")).text()
    assert f'href="/s/{mine}"' in page and f'href="/s/{bobs}"' not in page
    assert "on discord" not in page  # the same person elsewhere is another caller
    assert (await client.get(f"/s/{mine}")).status == 200
    theirs = await client.get(f"/s/{bobs}")
    missing = await client.get("/s/999999")
    assert theirs.status == missing.status == 404
    said = [re.findall(r"<section.*</section>", await r.text(), re.S) for r in (theirs, missing)]
    assert said[0][0].replace(str(bobs), "N") == said[1][0].replace("999999", "N")
    # nothing tells another person's session from a missing one
    act = await client.post(
        f"/s/{bobs}/act", data={"csrf": csrf, "action": f"delete:{bobs}"}, allow_redirects=False
    )
    assert act.status == 404 and await app.store.get_session(bobs) is not None
    for path in (f"/s/{bobs}/diff?from=1&to=1", f"/s/{bobs}/download"):
        assert (await client.get(path)).status == 404, path
    api = await client.get(f"/api/sessions/{bobs}")
    assert api.status == 404  # the API with the cookie: the same rule
    assert (await client.get(f"/s/{mine}?v=7")).status == 404
    assert (await client.get(f"/s/{mine}?v=x")).status == 404
    huge = "9" * 30
    for path in (f"/s/{huge}", f"/s/{mine}?v={huge}", f"/s/{mine}/diff?from=1&to={huge}"):
        assert (await client.get(path)).status == 404, path


async def test_search_and_escaping(app: App, fake: FakeEngine, client: Client) -> None:
    await session_of(app, fake, ALICE, "print('<b>bold</b>')")
    evil = await session_of(app, fake, ALICE, "<script>alert(1)</script>")
    await sign_in(client, app, ALICE)
    found = await (await client.get("/", params={"q": "alert"})).text()
    assert f'href="/s/{evil}"' in found and "bold" not in found
    assert "<script>alert" not in found and "&lt;script&gt;alert(1)" in found
    none = await (await client.get("/", params={"q": "<nothing>"})).text()
    assert say.no_sessions("<nothing>").replace("<", "&lt;").replace(">", "&gt;") in none
    page = await (await client.get(f"/s/{evil}")).text()
    assert "<script>alert" not in page
    assert 'class="highlight"' in page and "Here you are." in page


async def test_forms_and_api_calls_need_the_csrf_token(
    app: App, fake: FakeEngine, client: Client
) -> None:
    sid = await session_of(app, fake, ALICE, "print(1)", "print(2)")
    csrf = await sign_in(client, app, ALICE)
    for data in ({"action": f"revert:{sid}:1"}, {"action": f"revert:{sid}:1", "csrf": "nope"}):
        refused = await client.post(f"/s/{sid}/act", data=data, allow_redirects=False)
        assert refused.status == 403 and say.FORM_EXPIRED in await refused.text()
    fake.responder = lambda request: fenced("print(3)")
    turn = f"/api/sessions/{sid}/turns"
    refused = await client.post(turn, json={"text": "three"})
    assert refused.status == 403 and "error" in await refused.json()
    wrong = await client.post(turn, json={"text": "three"}, headers={"X-CSRF-Token": "x"})
    assert wrong.status == 403
    assert (await app.store.get_session(sid)).version_count == 2  # type: ignore[union-attr]
    made = await client.post(turn, json={"text": "three"}, headers={"X-CSRF-Token": csrf})
    assert made.status == 200, await made.text()
    assert (await made.json())["version"]["number"] == 3
    listed = await client.get("/api/sessions")  # reading needs the cookie only
    assert listed.status == 200 and len((await listed.json())["sessions"]) == 1
    client.session.cookie_jar.clear()
    assert (await client.get("/api/sessions")).status == 401


async def test_versions_diff_download_revert_and_delete(
    app: App, fake: FakeEngine, client: Client
) -> None:
    sid = await session_of(app, fake, ALICE, "x = 1\nprint(x)\n", "x = 2\nprint(x)\n")
    csrf = await sign_in(client, app, ALICE)
    page = await (await client.get(f"/s/{sid}?v=1")).text()
    assert "Version 1 of" in page and f'href="/s/{sid}?v=2"' in page
    assert f'value="revert:{sid}:1"' in page  # an older version offers Revert, as in chat
    diff = await client.get(f"/s/{sid}/diff", params={"from": "1", "to": "2"})
    text = await diff.text()
    assert diff.status == 200 and 'class="gd"' in text and 'class="gi"' in text
    assert "Version 1 → 2" in text
    same = await (await client.get(f"/s/{sid}/diff?from=2&to=2")).text()
    assert say.LABELS["same_code"] in same
    assert (await client.get(f"/s/{sid}/diff?from=a&to=2")).status == 404
    first_only = await client.get(f"/s/{sid}/diff?to=1")
    assert first_only.status == 400 and "nothing to compare" in await first_only.text()
    got = await client.get(f"/s/{sid}/download?v=1")
    assert got.headers["Content-Disposition"] == 'attachment; filename="snippet.py"'
    assert await got.text() == "x = 1\nprint(x)\n"
    back = await client.post(
        f"/s/{sid}/act", data={"csrf": csrf, "action": f"revert:{sid}:1"}, allow_redirects=False
    )
    assert back.status == 303 and back.headers["Location"] == f"/s/{sid}"
    latest = await app.store.get_version(sid)
    assert latest is not None and latest.number == 3 and latest.code == "x = 1\nprint(x)"
    again = await client.post(
        f"/s/{sid}/act", data={"csrf": csrf, "action": f"revert:{sid}:3"}, allow_redirects=False
    )
    assert again.status == 400 and "already the latest" in await again.text()
    gone = await client.post(
        f"/s/{sid}/act", data={"csrf": csrf, "action": f"delete:{sid}"}, allow_redirects=False
    )
    assert gone.status == 303 and gone.headers["Location"] == "/"
    assert await app.store.get_session(sid) is None


async def test_the_prompt_boxes_work_without_the_script(
    app: App, fake: FakeEngine, client: Client
) -> None:
    csrf = await sign_in(client, app, ALICE)
    fake.responder = lambda request: fenced("print('hello')")
    made = await client.post(
        "/new",
        data={"csrf": csrf, "prompt": "say hello", "language": "python", "model": "fake:echo"},
        allow_redirects=False,
    )
    assert made.status == 303, await made.text()
    sid = int(made.headers["Location"].rsplit("/", 1)[1])
    session = await app.store.get_session(sid)
    assert session is not None and session.key.platform == "slack"
    assert session.key.workspace == "T1" and session.owner == "U_ALICE"
    fake.responder = lambda request: fenced("print('hello, world')")
    turned = await client.post(
        f"/s/{sid}/turn", data={"csrf": csrf, "text": "greet the world"}, allow_redirects=False
    )
    assert turned.status == 303
    empty = await client.post(f"/s/{sid}/turn", data={"csrf": csrf, "text": "  "})
    assert empty.status == 400 and "Tell me what the code should do" in await empty.text()
    refused = await client.post(
        "/new", data={"csrf": csrf, "prompt": "x", "language": "cobol"}, allow_redirects=False
    )
    assert refused.status == 400 and "cobol" in (await refused.text()).lower()
    fake.responder = lambda request: "I only answer in prose."
    prose = await client.post(
        f"/s/{sid}/turn", data={"csrf": csrf, "text": "explain it"}, allow_redirects=False
    )
    assert prose.status == 400 and "I only answer in prose." in await prose.text()


async def test_sign_out_ends_the_session_everywhere(app: App, client: Client) -> None:
    """The cookie is stateless, so a copy of it (another tab's, a stolen one) must be
    refused after sign-out too, by the page and by the API."""
    csrf = await sign_in(client, app, ALICE)
    copy = client.session.cookie_jar.filter_cookies(client.make_url("/"))[auth.COOKIE].value
    out = await client.post("/logout", data={"csrf": csrf})
    assert out.status == 200 and auth.COOKIE in out.headers["Set-Cookie"]
    assert (await client.get("/")).status == 401
    client.session.cookie_jar.update_cookies({auth.COOKIE: copy})
    assert (await client.get("/")).status == 401
    assert (await client.get("/api/sessions")).status == 401
    again = await client.post("/logout", data={"csrf": csrf})
    assert again.status == 401
    await sign_in(client, app, ALICE)  # a new sign-in is a new cookie: it works
    assert (await client.get("/")).status == 200


async def test_the_new_session_box_offers_languages_and_models(app: App, client: Client) -> None:
    await sign_in(client, app, ALICE)
    page = await (await client.get("/")).text()
    languages = re.findall(r'name="language" value="([^"]+)"', page)
    assert languages == app.service.languages.names()
    assert re.search(r'name="language" value="python" checked', page)
    models = re.findall(r'name="model" value="([^"]+)"', page)
    assert "fake:echo" in models and models[0] in [*app.engines.catalog.names(), "fake:echo"]
    assert csrf_of(page)


@pytest.fixture
def _needs_sandbox(app: App) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")


@pytest.mark.usefixtures("_needs_sandbox")
async def test_run_with_input_then_fix_through_the_forms(
    app: App, fake: FakeEngine, client: Client
) -> None:
    broken = "import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])\nraise SystemExit(3)\n"
    sid = await session_of(app, fake, ALICE, broken)
    csrf = await sign_in(client, app, ALICE)
    ran = await client.post(
        f"/s/{sid}/act",
        data={"csrf": csrf, "action": f"input:{sid}:1", "stdin": "hi\r\n", "args": "a 'b c'"},
        allow_redirects=False,
    )
    assert ran.status == 303 and ran.headers["Location"] == f"/s/{sid}?v=1#runs"
    page = await (await client.get(f"/s/{sid}")).text()
    assert "Run of version 1 of" in page and "HI\n [&#39;a&#39;, &#39;b c&#39;]" in page
    assert "exit 3" in page and f'value="fix:{sid}:1"' in page
    bad = await client.post(
        f"/s/{sid}/act", data={"csrf": csrf, "action": f"input:{sid}:1", "args": "'open"}
    )
    assert bad.status == 400 and "could not be read" in await bad.text()
    fake.responder = lambda request: fenced("print('fixed')")
    fixed = await client.post(
        f"/s/{sid}/act", data={"csrf": csrf, "action": f"fix:{sid}:1"}, allow_redirects=False
    )
    assert fixed.status == 303, await fixed.text()
    assert (await app.store.get_version(sid)).code == "print('fixed')"  # type: ignore[union-attr]


def test_an_action_has_ascii_numbers_only() -> None:
    assert Action.decode("run:12:3") == Action(kind="run", session_id=12, number=3)
    assert Action.decode("retry:12:5") == Action(kind="retry", session_id=12, failure=5)
    assert Action.decode("delete:12") == Action(kind="delete", session_id=12)
    refused = ["run:²", "run:1:²", "run:\u0661", "run:1:\u0661\u0662", "run:1:+2", "run:-1"]
    refused += ["run: 1", "run:1:" + "9" * 19, "run:", "run::1", "nope:1", "", "run:1:2:3"]
    for text in refused:
        assert Action.decode(text) is None, text


async def test_a_button_with_odd_digits_is_not_found(
    app: App, fake: FakeEngine, client: Client
) -> None:
    """Text only a forged form sends (superscripts, other scripts' digits) is refused as a
    button that is not there, never a server error."""
    sid = await session_of(app, fake, ALICE, "print(1)")
    csrf = await sign_in(client, app, ALICE)
    for action in (f"run:{sid}:²", f"run:{sid}:\u0661", f"revert:{sid}:" + "9" * 30, "run:²"):
        answer = await client.post(
            f"/s/{sid}/act", data={"csrf": csrf, "action": action}, allow_redirects=False
        )
        assert answer.status == 404, action
        assert words.explain(SessionNotFound(sid)) in await answer.text()
