"""``/api/sessions/{id}/files``: the session's input files, which every run finds beside it.

``PUT …/files/{name}`` takes the file's bytes as the raw body (any content type; at most
:data:`MAX_FILE_BODY`), stored under the name the sandbox accepts (:func:`bot.files.safe_name`;
the answer says which). A file of the same name is replaced. The limits are the chat
platforms' (:mod:`bot.files`): one file, the number of files and their total size; a file
over one is refused in the words chat users read.
"""

from __future__ import annotations

from aiohttp import web

from bot.api.endpoint import Call, endpoint
from bot.api.errors import ApiError
from bot.files import MAX_TOTAL_BYTES
from bot.present import api as say
from bot.present.api import file_json, session_json
from bot.values import Upload

__all__ = ["MAX_FILE_BODY", "routes"]

#: the body of one PUT: no single file may be larger than the session's files together
MAX_FILE_BODY = MAX_TOTAL_BYTES


async def listing(call: Call) -> web.StreamResponse:
    session = await call.session()
    _, items = await call.app.service.files(session.id, call.caller)
    return web.json_response({"files": [file_json(item) for item in items]})


async def put(call: Call) -> web.StreamResponse:
    session = await call.session()
    data = await call.request.read()
    if len(data) > MAX_FILE_BODY:
        raise ApiError(413, say.too_large(MAX_FILE_BODY))
    name = call.request.match_info["name"]
    upload = Upload(name=name, size=len(data), data=data)
    event = await call.app.service.attach(session, call.caller, [upload])
    refused = say.attach_refusal(event)
    if refused is not None:
        too_many = any(reason == "too_many" for _, reason in event.refused)
        raise ApiError(409 if too_many else 413, refused)
    return web.json_response(
        {"session": session_json(event.session), "file": file_json(event.stored[0])}
    )


def routes() -> list[web.RouteDef]:
    files = "/api/sessions/{id:\\d{1,18}}/files"
    return [
        web.get(files, endpoint(listing), allow_head=False),
        web.put(f"{files}/{{name}}", endpoint(put)),
    ]
