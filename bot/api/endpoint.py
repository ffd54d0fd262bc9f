"""What every API handler shares: the state it reaches, the caller, the body and its fields.

A handler is written as ``async def handler(call: Call) -> web.StreamResponse`` and wrapped
with :func:`endpoint`, which authenticates the caller first and turns any exception into the
JSON error its type calls for (:mod:`bot.api.errors`), so that a handler reads as a few lines:
parse, ask the core, answer. Bodies are checked like the core's options are: a JSON object of
at most :data:`MAX_JSON` bytes, with only the fields the call names, each of its type; a bad
one is a 400 with a line that names the field.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from bot.api.auth import authenticate
from bot.api.errors import ApiError, error_response
from bot.api.turns import Turns
from bot.app import App
from bot.errors import NotOwner, SessionNotFound
from bot.present import api as say
from bot.present.api import Json
from bot.values import Caller
from storage import Session

__all__ = ["API", "MAX_JSON", "Api", "Call", "endpoint", "number", "strings", "text"]

MAX_JSON = 1024 * 1024
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Api:
    """The API's share of the web app: the bot's parts and the turns in flight."""

    app: App
    turns: Turns


API = web.AppKey("codethread_api", Api)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One authenticated request, with what its handler needs."""

    request: web.Request
    api: Api
    caller: Caller

    @property
    def app(self) -> App:
        return self.api.app

    def path_int(self, name: str) -> int:
        """A number in the path (the routes admit only digits there, at most 18 of them)."""
        return int(self.request.match_info[name])

    async def session(self) -> Session:
        """The caller's own session of the path's ``id``; someone else's is not found, in
        the same words as a missing one."""
        session_id = self.path_int("id")
        try:
            return await self.app.service.owned(session_id, self.caller)
        except NotOwner:
            raise SessionNotFound(session_id) from None

    async def body(self, allowed: Sequence[str]) -> Json:
        """The JSON object sent, refused when it holds a field not in ``allowed``."""
        raw = await self.request.read()
        if len(raw) > MAX_JSON:
            raise ApiError(413, say.too_large(MAX_JSON))
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
            raise ApiError(400, say.NOT_JSON) from None
        if not isinstance(body, dict):
            raise ApiError(400, say.NOT_JSON)
        extra = [name for name in body if name not in allowed]
        if extra:
            raise ApiError(400, say.unknown_fields(extra, allowed))
        return body

    def query_int(self, name: str, *, low: int = 1, high: int = 10**9) -> int | None:
        text = self.request.query.get(name)
        if text is None or text == "":
            return None
        if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
            raise ApiError(400, say.bad_query(name, f"a whole number from {low} to {high}"))
        return int(text)


def text(body: Json, name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, say.missing(name))
        return None
    if not isinstance(value, str):
        raise ApiError(400, say.wrong_type(name, "a string"))
    return value


def number(body: Json, name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, say.missing(name))
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**53:
        raise ApiError(400, say.wrong_type(name, "a whole number from 1"))
    return value


def strings(body: Json, name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, say.wrong_type(name, "a list of strings"))
    return value


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` as an aiohttp handler: authenticated, its errors answered as JSON."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        api = request.config_dict[API]
        try:
            caller = await authenticate(request, api.app.store)
            return await handler(Call(request=request, api=api, caller=caller))
        except (web.HTTPException, ConnectionError):  # aiohttp's to answer; a client gone
            raise
        except Exception as err:
            return error_response(err, session_id=request.match_info.get("id"))

    return handle
