"""``/api/sessions``: start, change, list, show, compare, revert and delete sessions.

Each handler is the core call a chat command makes, with the same checks (the core's input
limits, rate limit and allow-lists) and the same words; only the caller's own sessions are
reachable (someone else's is a 404, like a missing one). A session started here lives in a
thread of its own: platform and workspace the caller's (``api`` for a token), channel the
user, thread a fresh id.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from bot.api.endpoint import Call, endpoint, number, text
from bot.api.errors import ApiError
from bot.api.turns import respond
from bot.errors import UserError
from bot.present.api import comparison_json, session_json, version_json, version_summary
from storage import SessionKey

__all__ = ["routes"]


async def create(call: Call) -> web.StreamResponse:
    body = await call.body(("prompt", "language", "model"))
    prompt = text(body, "prompt", required=True)
    assert prompt is not None
    service, caller = call.app.service, call.caller
    checked = service.check(
        caller, prompt=prompt, language=text(body, "language"), model=text(body, "model")
    )
    key = SessionKey(
        platform=caller.platform,
        workspace=caller.workspace,
        channel=caller.user,
        thread=uuid.uuid4().hex,
    )
    stream = service.open(caller, key, checked)  # its place in line is taken here
    return await respond(call.request, call.api.turns, stream, status=201)


async def turn(call: Call) -> web.StreamResponse:
    body = await call.body(("text",))
    request = text(body, "text", required=True)
    assert request is not None
    session = await call.session()
    stream = call.app.service.turn(session, call.caller, request)
    return await respond(call.request, call.api.turns, stream)


async def revert(call: Call) -> web.StreamResponse:
    body = await call.body(("version",))
    target = number(body, "version", required=True)
    assert target is not None
    session = await call.session()
    stream = call.app.service.revert(session, call.caller, target)
    return await respond(call.request, call.api.turns, stream)


async def listing(call: Call) -> web.StreamResponse:
    search = call.request.query.get("search") or None
    limit = call.query_int("limit", high=100) or 25
    found = await call.app.service.list_sessions(call.caller, limit=limit, search=search)
    return web.json_response({"sessions": [session_json(s) for s in found]})


async def show(call: Call) -> web.StreamResponse:
    session = await call.session()
    versions = await call.app.store.list_versions(session.id)
    return web.json_response(
        {
            "session": session_json(session),
            "version": version_json(versions[-1]) if versions else None,
            "versions": [version_summary(v) for v in versions],
        }
    )


async def version(call: Call) -> web.StreamResponse:
    session = await call.session()
    try:
        found = await call.app.service.version(session, call.path_int("number"))
    except UserError as err:
        if type(err) is UserError:  # "no version N": not found, in the core's words
            raise ApiError(404, str(err)) from None
        raise
    assert found is not None
    return web.json_response({"session": session_json(session), "version": version_json(found)})


async def diff(call: Call) -> web.StreamResponse:
    session = await call.session()
    old, new = call.query_int("from"), call.query_int("to")
    comparison = await call.app.service.diff(session.id, call.caller, old, new, owned=True)
    return web.json_response(comparison_json(comparison))


async def delete(call: Call) -> web.StreamResponse:
    session = await call.session()
    await call.app.service.delete(session.id, call.caller)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    one = "/api/sessions/{id:\\d{1,18}}"
    return [
        web.post("/api/sessions", endpoint(create)),
        web.get("/api/sessions", endpoint(listing), allow_head=False),
        web.get(one, endpoint(show), allow_head=False),
        web.delete(one, endpoint(delete)),
        web.post(f"{one}/turns", endpoint(turn)),
        web.get(f"{one}/versions/{{number:\\d{{1,18}}}}", endpoint(version), allow_head=False),
        web.get(f"{one}/diff", endpoint(diff), allow_head=False),
        web.post(f"{one}/revert", endpoint(revert)),
    ]
