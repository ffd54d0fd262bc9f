"""``/api/sessions/{id}/runs``: run a version in the sandbox, list the runs, fetch their files.

A run gets the session's files beside it (``PUT …/files/{name}``), standard input and
arguments, like Run with input… in chat; ``"kind": "test"`` runs model-written unit tests of
the latest version instead (Test). The sandbox's limits and the rate limit are the core's.

A file a run made is served as a download (``Content-Disposition: attachment``), never
sniffed (``nosniff``) and under a sandboxing CSP: it was written by code the model wrote, so
it must not become a page of this origin. Only raster pictures (:data:`PICTURES`) keep their
type, inline, so that the page can show them; everything else is
``application/octet-stream``, whatever its name: a ``x.js`` served as ``text/javascript``
from our origin would pass the page's ``script-src 'self'``. Nothing is cached (``no-store``):
the file is the signed-in person's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from bot.api.endpoint import Call, endpoint, number, strings, text
from bot.api.errors import ApiError
from bot.present import api as say
from bot.present.api import report_json, run_json

__all__ = ["PICTURES", "routes"]

#: the types a run's file is served as (inline) by its name's suffix; any other is a download
PICTURES: Mapping[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

#: what cannot stand in a quoted header parameter as it is (the exact name goes in filename*)
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\]')


async def run(call: Call) -> web.StreamResponse:
    body = await call.body(("version", "stdin", "args", "kind"))
    kind = text(body, "kind") or "run"
    target, stdin, args = number(body, "version"), text(body, "stdin") or "", strings(body, "args")
    if kind not in ("run", "test"):
        raise ApiError(400, say.wrong_type("kind", '"run" or "test"'))
    if kind == "test" and (stdin or args):
        raise ApiError(400, say.TEST_INPUT)
    session = await call.session()
    runs = call.app.runs
    if kind == "test":
        report = await runs.test(session.id, call.caller, number=target, scoped=True)
    else:
        report = await runs.run(
            session.id, call.caller, number=target, scoped=True, stdin=stdin, args=args
        )
    return web.json_response({"run": report_json(report, report.run_id)})


async def listing(call: Call) -> web.StreamResponse:
    session = await call.session()
    limit = call.query_int("limit", high=200) or 50
    found = await call.app.store.list_runs(session.id, limit=limit)
    return web.json_response({"runs": [run_json(item, session.id) for item in found]})


async def artifact(call: Call) -> web.StreamResponse:
    session = await call.session()
    run_id, name = call.path_int("run_id"), call.request.match_info["name"]
    store = call.app.store
    found = await store.get_run(run_id)
    version = (
        await store.get_version(session.id, found.version_number)
        if found is not None and found.version_number is not None
        else None
    )
    if found is None or version is None or version.id != found.version_id:
        raise ApiError(404, say.no_run(session.id, run_id))
    item = await store.get_artifact(run_id, name)
    if item is None:
        raise ApiError(404, say.no_artifact(run_id, name))
    base = name.rsplit("/", 1)[-1]
    _, dot, suffix = base.lower().rpartition(".")
    picture = PICTURES.get(f".{suffix}") if dot else None
    inline, kind = picture is not None, picture or "application/octet-stream"
    plain = _UNQUOTABLE.sub("_", base)
    disposition = f'{"inline" if inline else "attachment"}; filename="{plain}"'
    if plain != base:
        disposition += f"; filename*=UTF-8''{quote(base, safe='')}"
    return web.Response(
        body=item.data,
        headers={
            "Content-Type": kind,
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )


def routes() -> list[web.RouteDef]:
    runs = "/api/sessions/{id:\\d{1,18}}/runs"
    return [
        web.post(runs, endpoint(run)),
        web.get(runs, endpoint(listing), allow_head=False),
        web.get(
            f"{runs}/{{run_id:\\d{{1,18}}}}/artifacts/{{name:.+}}",
            endpoint(artifact),
            allow_head=False,
        ),
    ]
