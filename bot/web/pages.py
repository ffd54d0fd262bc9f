"""The page's handlers: server-rendered HTML of the caller's own sessions, and its forms.

``GET /`` lists the signed-in person's sessions (with search) under a box that starts a new
one; ``GET /s/{id}`` shows a session: its versions, the chosen one highlighted with its note,
the buttons the core offers for it, the comparison form, and its runs with their output and
the files they made (pictures shown, from the API's artifact URL, which the cookie
authorises). ``GET /s/{id}/diff`` compares any two versions.

What changes state is either the page's script talking to the JSON API (the prompt boxes,
which stream the answer as it is written) or a plain form with the CSRF token: a button's form
goes to ``POST /s/{id}/act`` and through :meth:`Presenter.act`, exactly as a chat button does
(see :mod:`bot.web.surface`). The prompt boxes are plain forms too (``POST /new``,
``POST /s/{id}/turn``), which the script takes over; without the script they still work, in
one answer at the end.

Signing in takes two steps (:func:`login`, :func:`login_post`): opening a login link shows a
page that posts it back, and only that POST, from our own origin, spends the link and sets
the cookie (``POST /logout`` ends the cookie everywhere).

Only the signed-in person's own sessions are shown; any other id, and any session of another
person, gets the same "not found" page.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.errors import NotOwner, SessionNotFound, UserError
from bot.present import web as say
from bot.present import words
from bot.run_options import parse_args
from bot.values import Action, Caller
from bot.web import auth, render
from bot.web.shapes import index_values, session_values
from bot.web.site import LOGIN_REFERRER, SECURITY_HEADERS, SITE, CsrfMissing, Site, Visitor
from bot.web.surface import PageSurface
from storage import Session, SessionKey

__all__ = ["routes"]

#: the buttons that are forms (Diff and Download are links; View history is this page)
_PRESSABLE = frozenset({"run", "input", "test", "fix", "revert", "delete", "retry"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", index),
        web.get("/login", login, allow_head=False),  # a GET only looks: see login()
        web.post("/login", login_post),
        web.post("/logout", logout),
        web.post("/new", new_session),
        web.get(r"/s/{id:\d{1,18}}", session_page),
        web.get(r"/s/{id:\d{1,18}}/diff", diff_page),
        web.get(r"/s/{id:\d{1,18}}/download", download),
        web.post(r"/s/{id:\d{1,18}}/act", act),
        web.post(r"/s/{id:\d{1,18}}/turn", turn),
        web.get("/static/{name}", static),
    ]


# -- answers ---------------------------------------------------------------------------------


def html(template: str, values: Mapping[str, Any], *, status: int = 200) -> web.Response:
    base = {"w": say.LABELS, "script": say.SCRIPT, "static": render.static_url}
    body = render.page(template, {**base, **values})
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"  # private, and carries the CSRF token
    return response


def signed_out(message: str = say.SIGNED_OUT, *, status: int = 401) -> web.Response:
    return html("message.html", {"title": say.LABELS["sign_in"], "message": message}, status=status)


def not_found(session_id: object) -> web.Response:
    """The same page for a missing session and another person's: nothing tells them apart."""
    message = words.explain(SessionNotFound(session_id))
    return html("message.html", {"title": say.LABELS["not_found"], "message": message}, status=404)


def _see(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers=SECURITY_HEADERS)


async def _visitor(request: web.Request, *, form: bool = False) -> Visitor | web.Response:
    try:
        visitor = await request.app[SITE].visitor(request, form=form)
    except CsrfMissing:
        return html("message.html", {"title": say.LABELS["sign_in"], "message": say.FORM_EXPIRED},
                    status=403)  # fmt: skip
    return visitor if visitor is not None else signed_out()


async def _visited(
    request: web.Request, *, form: bool = False
) -> tuple[Site, Visitor, Session] | web.Response:
    """The signed-in visitor and their session ``{id}`` of the path; else the page to answer
    (sign in, the form expired, not found)."""
    visitor = await _visitor(request, form=form)
    if isinstance(visitor, web.Response):
        return visitor
    site, session_id = request.app[SITE], int(request.match_info["id"])
    session = await _owned(site, visitor, session_id)
    if session is None:
        return not_found(session_id)
    return site, visitor, session


async def _owned(site: Site, visitor: Visitor, session_id: int) -> Session | None:
    try:
        return await site.app.service.owned(session_id, visitor.caller)
    except (SessionNotFound, NotOwner):
        return None


def _number(text: str | None) -> int | None:
    """A version number from the query: None when absent; ValueError when not a number."""
    if text is None or text == "":
        return None
    number = int(text)
    if not 1 <= number <= 10**9:  # no session has more; the store takes 64-bit numbers only
        raise ValueError(text)
    return number


# -- signing in and out ---------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    """A login link opened: a page that posts it back (``POST /login``), spending nothing.

    Link previewers, mail scanners and browsers' prefetching GET links on their own; were
    the GET to sign in, they would spend the link, or get the person's cookie themselves.
    The page's script posts the form at once (a button does without the script), unless the
    browser is signed in as someone else already: then the page asks first. A link that is
    forged, altered or expired gets the sign-in page straight away."""
    site = request.app[SITE]
    token = request.query.get("t", "")
    grant = auth.peek_link(await site.key(), token)
    if grant is None:
        return signed_out(say.LINK_REJECTED, status=403)
    return _continue(token, grant, await site.grant(request))


async def login_post(request: web.Request) -> web.Response:
    """The link's page posted: the link is spent, the cookie set, then ``/`` (a 303).

    Refused unless the post came from our own page (:meth:`Site.same_origin`): else any site
    could sign a visitor in as whoever's link it holds (login CSRF). A browser signed in as
    someone else gets the question first (the form's ``switch`` field answers it). The 303's
    GET follows a same-origin POST, so the browser sends the new SameSite=Strict cookie with
    it, even when the link was clicked in a chat app on another site."""
    site = request.app[SITE]
    if not site.same_origin(request):
        return signed_out(say.LOGIN_ELSEWHERE, status=403)
    fields = await request.post()
    token, key = str(fields.get("t", "")), await site.key()
    link, current = auth.peek_link(key, token), await site.grant(request)
    if link is None:
        return signed_out(say.LINK_REJECTED, status=403)
    same = current is not None and current.caller == link.caller
    if current is not None and not same and fields.get("switch") != "1":
        return _continue(token, link, current)
    grant = await auth.read_link(key, site.app.store, token)
    if grant is None and not same:
        return signed_out(say.LINK_REJECTED, status=403)
    response = web.Response(status=303, headers={**SECURITY_HEADERS, "Location": "/"})
    response.headers["Cache-Control"] = "no-store"
    if grant is not None:  # else: a used link posted again (Back), by who is signed in anyway
        response.set_cookie(
            auth.COOKIE,
            auth.session_cookie(key, grant.caller),
            max_age=int(auth.COOKIE_SECONDS),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=site.https(request),
        )
    return response


def _continue(token: str, link: auth.Grant, current: auth.Grant | None) -> web.Response:
    """The page that posts ``token``: on its own, or, when ``current`` is someone else's
    sign-in, when the person says so."""
    switch = current is not None and current.caller != link.caller
    message = say.signing_in(link.caller)
    if current is not None and switch:
        message = say.switch_to(current.caller, link.caller)
    values = {"title": say.LABELS["sign_in"], "message": message, "token": token}
    response = html("login.html", {**values, "switch": switch})
    response.headers.update(LOGIN_REFERRER)  # the form's Origin, for login_post's checks
    return response


async def logout(request: web.Request) -> web.Response:
    """Sign out: the cookie is deleted, and its seed written down, so that a copy of it (a
    second tab, a stolen one) is refused on every replica too (:func:`auth.end_session`)."""
    visitor = await _visitor(request, form=True)
    if isinstance(visitor, web.Response):
        return visitor
    await auth.end_session(request.app[SITE].app.store, visitor.grant)
    response = signed_out(status=200)
    response.del_cookie(auth.COOKIE, path="/")
    return response


# -- pages ------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    visitor = await _visitor(request)
    if isinstance(visitor, web.Response):
        return visitor
    search = request.query.get("q", "").strip()[:200] or None
    values = await index_values(request.app[SITE], visitor, search=search)
    return html("index.html", values)


async def session_page(request: web.Request) -> web.Response:
    visited = await _visited(request)
    if isinstance(visited, web.Response):
        return visited
    site, visitor, session = visited
    session_id = session.id
    try:
        number = _number(request.query.get("v"))
        values = await session_values(site, visitor, session, number)
    except (ValueError, UserError):
        return not_found(f"{session_id} version {request.query.get('v')}")
    return html("session.html", values)


async def diff_page(request: web.Request) -> web.Response:
    visited = await _visited(request)
    if isinstance(visited, web.Response):
        return visited
    site, visitor, session = visited
    session_id = session.id
    try:
        old, new = _number(request.query.get("from")), _number(request.query.get("to"))
    except ValueError:
        return not_found(session_id)
    values = await session_values(site, visitor, session, new, compare=(old, new))
    return html("diff.html", values, status=400 if values["problems"] else 200)


async def download(request: web.Request) -> web.StreamResponse:
    """A version's code as a file (the presenter's Download, as every surface has it)."""
    visited = await _visited(request)
    if isinstance(visited, web.Response):
        return visited
    site, visitor, session = visited
    session_id = session.id
    try:
        number = _number(request.query.get("v"))
    except ValueError:
        return not_found(session_id)
    surface = PageSurface()
    await site.app.presenter.download(surface, visitor.caller, session_id, number)
    file = surface.file
    if file is None:
        return not_found(f"{session_id} version {number}")
    code = file.payload if file.payload.endswith(b"\n") else file.payload + b"\n"
    response = web.Response(body=code, content_type="text/plain", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Disposition"] = f'attachment; filename="{file.filename}"'
    return response


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        body, content_type = render.static(name)
    except KeyError:
        raise web.HTTPNotFound() from None
    response = web.Response(body=body, content_type=content_type)
    response.headers.update(SECURITY_HEADERS)
    # the page names each file with its content's hash (render.static_url): it never changes
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


# -- forms ------------------------------------------------------------------------------------


async def act(request: web.Request) -> web.Response:
    """A button's form: the presenter acts as for any surface's button, then the page that
    shows the new state (or the refusal, in the presenter's words)."""
    visited = await _visited(request, form=True)
    if isinstance(visited, web.Response):
        return visited
    site, visitor, session = visited
    session_id = session.id
    fields = await request.post()
    action = Action.decode(str(fields.get("action", "")))
    if action is None or action.session_id != session_id or action.kind not in _PRESSABLE:
        return not_found(session_id)
    surface = PageSurface()
    presenter, caller = site.app.presenter, visitor.caller
    if action.kind == "input":  # Run with input…: the form carries stdin and arguments
        try:
            args = parse_args(str(fields.get("args", "")))
        except UserError as err:
            return await _refused(site, visitor, session, [words.explain(err)])
        stdin = str(fields.get("stdin", "")).replace("\r\n", "\n")
        await presenter.run(
            surface, caller, session_id, number=action.number, stdin=stdin, args=args
        )
    else:
        await presenter.act(surface, caller, action)
    if surface.problems or surface.answers:
        return await _refused(site, visitor, session, surface.problems + surface.answers)
    if surface.closed is not None:
        raise _see("/")
    if action.makes_version:
        raise _see(f"/s/{session_id}")
    shown = f"?v={action.number}" if action.number else ""
    raise _see(f"/s/{session_id}{shown}#runs")


async def turn(request: web.Request) -> web.Response:
    """The prompt box under a version, without the script: the next version, in one answer."""
    visited = await _visited(request, form=True)
    if isinstance(visited, web.Response):
        return visited
    site, visitor, session = visited
    session_id = session.id
    text = str((await request.post()).get("text", ""))
    surface = PageSurface()
    service = site.app.service
    await site.app.presenter.turn(
        surface, lambda: service.turn(session, visitor.caller, text), request=text
    )
    if surface.problems or surface.answers:
        return await _refused(site, visitor, session, surface.problems + surface.answers)
    raise _see(f"/s/{session_id}")


async def new_session(request: web.Request) -> web.Response:
    """The prompt box of ``/``, without the script: a new session and its first version."""
    visitor = await _visitor(request, form=True)
    if isinstance(visitor, web.Response):
        return visitor
    site, caller = request.app[SITE], visitor.caller
    fields = await request.post()
    service, surface = site.app.service, PageSurface()
    try:
        checked = service.check(
            caller,
            prompt=str(fields.get("prompt", "")),
            language=str(fields.get("language", "")) or None,
            model=str(fields.get("model", "")) or None,
        )
    except UserError as err:
        values = await index_values(site, visitor, problems=[words.explain(err)])
        return html("index.html", values, status=400)
    outcome = await site.app.presenter.show(surface, service.open(caller, web_key(caller), checked))
    if outcome is not None and outcome.session.version_count:
        raise _see(f"/s/{outcome.session.id}")
    values = await index_values(site, visitor, problems=surface.problems + surface.answers)
    return html("index.html", values, status=400)


def web_key(caller: Caller) -> SessionKey:
    """Where a session started on the page lives: the person's platform and workspace (so
    their other surfaces list it too), a ``web`` channel and a fresh thread of its own."""
    return SessionKey(
        platform=caller.platform,
        workspace=caller.workspace,
        channel="web",
        thread=f"web-{uuid.uuid4().hex}",
    )


async def _refused(
    site: Site, visitor: Visitor, session: Session, problems: list[str]
) -> web.Response:
    """The session page again, with what went wrong on top."""
    fresh = await _owned(site, visitor, session.id)
    if fresh is None:
        return not_found(session.id)
    values = await session_values(site, visitor, fresh, None, problems=problems)
    return html("session.html", values, status=400)
