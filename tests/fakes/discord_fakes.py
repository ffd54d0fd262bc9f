"""Discord without the internet, driving real discord.py objects (pinned: discord.py 2.7).

- :class:`RecordingHTTP` is a ``discord.http.HTTPClient`` whose ``request`` records every REST
  call (sends, edits, thread creation, uploads with their bytes: ``Call.uploads``) and answers
  with realistic payloads instead of reaching Discord; ``fail_next`` makes a route answer with
  an error such as 403. Attachments a test sends (``FakeGateway.message(files=…)``) are
  served, once :meth:`FakeDiscord.serve_cdn` has started it, by a CDN on 127.0.0.1 that
  discord.py's own ``get_from_cdn`` downloads from (else from memory); each download is
  recorded as a ``cdn`` call.
- Messages are checked as Discord checks them (:func:`check_message`): Components V2 rules
  (no ``content`` with the flag, a flag never removed, 4,000 characters of text, 40
  components, five buttons a row, ``attachment://`` files and gallery items that were
  uploaded, ten files and 10 MiB a message) and 2,000 characters of plain ``content``; a
  message Discord would refuse is answered with 400 (413 past 10 MiB) and recorded in
  ``FakeDiscord.refused``, which the tests' fixtures require to stay empty.
- Ids are snowflakes of the current time, so an interaction's token expires as Discord's
  does: 15 minutes after it was made (``age=`` makes an older one), and webhook calls with an
  expired token are answered 401.
- :class:`FakeWebhooks` is an ``AsyncWebhookAdapter`` for interaction callbacks (defer, the
  original response) and followups; install it with ``async_context.set`` — the gateway helpers
  below do so before each event, so the tasks discord.py spawns for it inherit it.
- :class:`FakeGateway` injects gateway events through the connection state's ``parse_*``
  methods, from raw payloads as Discord sends them: a guild with a text channel, thread
  creation, messages, slash commands, autocomplete, button clicks and modal submits
  (a modal sent as an interaction's answer, callback type 9, is kept in
  ``FakeDiscord.modals`` by the interaction's token).

Typical use::

    fake = FakeDiscord()
    app = await build(config_with_a_discord_token, discord_http=fake.http)
    [adapter] = app.adapters
    await adapter.client.login("token")            # setup_hook: the buttons
    await fake.serve_cdn()                         # attachments from 127.0.0.1
    gateway = fake.gateway(adapter.client)
    gateway.guild_create()
    token = gateway.slash("code", prompt="add two numbers")
    await settle()
    assert fake.calls_to("POST /channels/{channel_id}/messages/{message_id}/threads")
    await fake.aclose()
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import mimetypes
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
from aiohttp import web
from discord.http import HTTPClient, Route
from discord.utils import MISSING
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

__all__ = [
    "ALICE",
    "APP_ID",
    "BOB",
    "BOT",
    "CHANNEL_ID",
    "GUILD_ID",
    "Call",
    "DiscordServer",
    "FakeDiscord",
    "FakeGateway",
    "FakeWebhooks",
    "RecordingHTTP",
    "check_message",
    "gallery",
    "http_error",
    "interaction_payload",
    "settle",
    "texts",
]

APP_ID = 900_000_000_000_000_001
GUILD_ID = 900_000_000_000_000_002
CHANNEL_ID = 900_000_000_000_000_003
BOT = {
    "id": str(APP_ID),
    "username": "codethread",
    "discriminator": "0",
    "avatar": None,
    "bot": True,
}
ALICE = {"id": "100000000000000001", "username": "alice", "discriminator": "0", "avatar": None}
BOB = {"id": "100000000000000002", "username": "bob", "discriminator": "0", "avatar": None}
OTHER_BOT = {**BOB, "id": "100000000000000003", "username": "otherbot", "bot": True}
ALL_PERMISSIONS = str(discord.Permissions.all().value)
V2 = 1 << 15  # IS_COMPONENTS_V2
MAX_FILES = 10  # attachments in one message
MAX_UPLOAD = 10 * 1024 * 1024  # bytes of attachments in one message (a server without boosts)
Uploads = Sequence[tuple[str, bytes]]  # files sent with a message: (filename, bytes)
TOKEN_LIFE = datetime.timedelta(minutes=15)
APP_INFO = {
    "id": str(APP_ID),
    "name": "codethread",
    "description": "",
    "icon": None,
    "bot_public": True,
    "bot_require_code_grant": False,
    "owner": ALICE,
    "verify_key": "0" * 64,
    "flags": 0,
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass(slots=True)
class Call:
    """One request the bot made: ``via`` is ``rest`` (bot token) or ``webhook`` (interaction)."""

    via: str
    method: str
    path: str  # the route template, e.g. /channels/{channel_id}/messages
    params: dict[str, str]
    json: Any
    files: list[tuple[str, str]] = field(default_factory=list)  # (filename, text)
    at: float = 0.0  # loop time
    response: Any = None  # what the fake answered
    uploads: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, exact bytes)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def body(self) -> dict[str, Any]:
        """The message part of the request (an interaction callback's ``data``)."""
        body = self.json if isinstance(self.json, dict) else {}
        if "data" in body and isinstance(body["data"], dict):
            return dict(body["data"])
        return body

    @property
    def content(self) -> str:
        """What the message says: its ``content``, or its text displays (Components V2)."""
        body = self.body
        return str(body.get("content") or "") or "\n".join(texts(body.get("components") or []))


def _walk(components: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk(component.get("components") or [])
        if isinstance(component.get("accessory"), dict):
            yield component["accessory"]


def texts(components: Iterable[dict[str, Any]]) -> list[str]:
    """The contents of a message's text displays, in order."""
    return [c["content"] for c in _walk(components) if c.get("type") == 10]


def check_message(
    body: dict[str, Any],
    uploads: Sequence[str],
    *,
    was: dict[str, Any] | None = None,
    size: int = 0,
) -> str | None:
    """Why Discord would refuse ``body`` (a send, or an edit of the message ``was``), or None.

    ``uploads`` are the names of the files sent along (``size`` bytes together); an edit also
    keeps the attachments it lists."""
    if len(uploads) > MAX_FILES:
        return f"a message holds at most {MAX_FILES} attachments"
    if size > MAX_UPLOAD:
        return "Request entity too large"
    flags = body.get("flags")
    v2 = bool((flags if flags is not None else (was or {}).get("flags") or 0) & V2)
    if was is not None and was.get("flags", 0) & V2 and flags is not None and not flags & V2:
        return "IS_COMPONENTS_V2 cannot be removed from a message"
    components = list(_walk(body.get("components") or []))
    if not v2:
        if any(c.get("type") not in (1, 2, 3, 5, 6, 7, 8) for c in components):
            return "Components V2 need the IS_COMPONENTS_V2 flag"
        if len(body.get("content") or "") > 2000:
            return "content: Must be 2000 or fewer in length"
        return None
    if body.get("content") or body.get("embeds"):
        return "content and embeds cannot be used with IS_COMPONENTS_V2"
    if "components" in body and not components:
        return "a Components V2 message needs a component"
    if len(components) > 40:
        return "a message holds at most 40 components"
    if sum(len(text) for text in texts(body.get("components") or [])) > 4000:
        return "text displays hold at most 4000 characters in all"
    for row in (c for c in components if c.get("type") == 1):
        if len(row.get("components") or []) > 5:
            return "an action row holds at most 5 buttons"
    attached = set(uploads) | {a.get("filename") for a in body.get("attachments") or []}
    for file in (c for c in components if c.get("type") == 13):
        url = file["file"]["url"]
        if not url.startswith("attachment://") or url[len("attachment://") :] not in attached:
            return f"a file component refers to {url}, which is not attached"
    for gallery in (c for c in components if c.get("type") == 12):
        items = gallery.get("items") or []
        if not 1 <= len(items) <= 10:
            return "a media gallery holds 1 to 10 items"
        for item in items:
            url = item["media"]["url"]
            local = url.startswith("attachment://")
            if local and url[len("attachment://") :] not in attached:
                return f"a media gallery refers to {url}, which is not attached"
    return None


def gallery(call: Call) -> list[str]:
    """The media URLs of a message's galleries, in order."""
    return [
        item["media"]["url"]
        for c in _walk(call.body.get("components") or [])
        if c.get("type") == 12
        for item in c.get("items") or []
    ]


def http_error(status: int, message: str, code: int = 0) -> discord.HTTPException:
    """The exception discord.py raises for an error answer (Forbidden for 403, ...)."""
    response = SimpleNamespace(status=status, reason=message)
    body = {"message": message, "code": code}
    kinds = {403: discord.Forbidden, 404: discord.NotFound}
    return kinds.get(status, discord.HTTPException)(response, body)  # type: ignore[arg-type]


def _route_params(path: str, url: str) -> dict[str, str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/?]+)", re.escape(path))
    match = re.search(pattern + r"$", url.split("?")[0])
    return match.groupdict() if match else {}


_OLD = itertools.count(1)  # keeps snowflakes of the past apart


class FakeDiscord:
    """Shared state of one fake Discord: ids, messages, threads, and every call in order."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self._last_id = 0
        self.calls: list[Call] = []
        self.refused: list[str] = []  # why messages Discord would refuse were answered 400
        self.cdn: dict[str, bytes] = {}  # attachment URL -> its bytes
        self.messages: dict[int, dict[str, Any]] = {}  # id -> latest payload
        self.threads: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> interaction payload
        self.originals: dict[str, dict[str, Any]] = {}  # token -> original response
        self.modals: dict[str, dict[str, Any]] = {}  # token -> the modal sent as its answer
        self.cdn_base = "https://cdn.discordapp.com"  # 127.0.0.1 once serve_cdn has started
        self._cdn: web.AppRunner | None = None
        self.http = RecordingHTTP(self, latency=latency)
        self.webhooks = FakeWebhooks(self, latency=latency)
        self._failures: dict[str, deque[Exception]] = {}
        self._new_call = asyncio.Event()

    def next_id(self, *, age: datetime.timedelta = datetime.timedelta(0)) -> int:
        """A new snowflake: of now (ever increasing), or of ``age`` ago."""
        made = discord.utils.time_snowflake(datetime.datetime.now(datetime.UTC) - age)
        if age:
            return made + next(_OLD)
        self._last_id = max(self._last_id + 1, made)
        return self._last_id

    async def serve_cdn(self) -> None:
        """Serve attachments from 127.0.0.1 from now on (what ``Attachment.read`` downloads
        with discord.py's own HTTP code); :meth:`aclose` stops it."""
        if self._cdn is not None:
            return
        app = web.Application()
        app.router.add_get("/attachments/{file_id}/{name}", self._serve)
        self._cdn = web.AppRunner(app)
        await self._cdn.setup()
        site = web.TCPSite(self._cdn, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.cdn_base = f"http://127.0.0.1:{port}"

    async def _serve(self, request: web.Request) -> web.Response:
        data = self.cdn.get(f"{self.cdn_base}{request.path}")
        response = (
            web.Response(status=404, text="Not Found")
            if data is None
            else web.Response(body=data, content_type="application/octet-stream")
        )
        response.force_close()  # no keep-alive: settle() waits for every task of the loop
        return response

    async def aclose(self) -> None:
        await self.http.close()
        if self._cdn is not None:
            await self._cdn.cleanup()
            self._cdn = None

    def check(self, body: dict[str, Any], uploads: Uploads, was: Any = None) -> None:
        """Answer 400 (413 for too many bytes), as Discord would, for a message it refuses."""
        size = sum(len(data) for _, data in uploads)
        reason = check_message(body, [name for name, _ in uploads], was=was, size=size)
        if reason is not None:
            self.refused.append(reason)
            if size > MAX_UPLOAD:
                raise http_error(413, reason, 40005)
            raise http_error(400, f"Invalid Form Body: {reason}", 50035)

    def gateway(self, client: discord.Client) -> FakeGateway:
        return FakeGateway(self, client)

    def fail_next(self, key: str, error: Exception, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``key`` (``"POST /channels/…"``) with ``error``."""
        self._failures.setdefault(key, deque()).extend([error] * times)

    def calls_to(self, *keys: str) -> list[Call]:
        return [c for c in self.calls if c.key in keys]

    async def first_call(self, key: str) -> Call:
        """The first call to ``key``, once it has been made."""
        while not (found := self.calls_to(key)):
            self._new_call.clear()
            await self._new_call.wait()
        return found[0]

    def in_channel(self, channel_id: int) -> list[Call]:
        """REST sends and edits in one channel (a thread), in order."""
        return [
            c
            for c in self.calls
            if c.via == "rest" and c.params.get("channel_id") == str(channel_id)
        ]

    def record(self, via: str, route: Route, body: Any, uploads: Uploads) -> Call:
        call = Call(
            via=via,
            method=route.method,
            path=route.path,
            params=_route_params(route.path, route.url),
            json=body,
            files=[(name, data.decode(errors="replace")) for name, data in uploads],
            at=asyncio.get_running_loop().time(),
            uploads=list(uploads),
        )
        self.calls.append(call)
        self._new_call.set()
        failures = self._failures.get(call.key)
        if failures:
            raise failures.popleft()
        return call

    def message(
        self, channel_id: int | str, body: dict[str, Any], files: Uploads = ()
    ) -> dict[str, Any]:
        """A message payload as Discord returns it for a message the bot sent."""
        self.check(body, files)
        payload: dict[str, Any] = {
            "id": str(self.next_id()),
            "channel_id": str(channel_id),
            "author": BOT,
            "content": body.get("content") or "",
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(files),
            "embeds": [],
            "pinned": False,
            "type": 19 if body.get("message_reference") else 0,
            "flags": body.get("flags") or 0,
            "components": body.get("components") or [],
        }
        if body.get("message_reference"):
            payload["message_reference"] = body["message_reference"]
        self.messages[int(payload["id"])] = payload
        return payload

    def posted(self, channel_id: int, *custom_ids: str, content: str = "") -> int:
        """The id of a message with these buttons that the bot posted earlier (before a
        restart, say): discord.py dispatches a click only for a button its message has."""
        buttons = [{"type": 2, "style": 1, "label": i, "custom_id": i} for i in custom_ids]
        body = {"content": content, "components": [{"type": 1, "components": buttons}]}
        return int(self.message(channel_id, body)["id"])

    def edit(
        self, message_id: int | str, body: dict[str, Any], files: Uploads = ()
    ) -> dict[str, Any]:
        payload = self.messages[int(message_id)]
        self.check(body, files, was=payload)
        for name in ("content", "components"):
            if name in body:
                payload[name] = body[name] if body[name] is not None else payload.get(name)
        if body.get("flags") is not None:  # ephemeral stays ephemeral
            payload["flags"] = body["flags"] | (payload.get("flags", 0) & 64)
        if "attachments" in body or files:
            payload["attachments"] = self._attachments(files)
        payload["edited_timestamp"] = _now()
        return payload

    def _attachments(
        self, files: Sequence[tuple[str, bytes | str]], content_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Attachment payloads for ``files`` (name, bytes or text), which the fake's CDN then
        serves; the content type is guessed from the name unless given."""
        out = []
        for name, content in files:
            data = content.encode() if isinstance(content, str) else content
            file_id = str(self.next_id())
            url = f"{self.cdn_base}/attachments/{file_id}/{name}"
            self.cdn[url] = data
            guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if guessed.startswith("text/"):
                guessed += "; charset=utf-8"
            out.append(
                {
                    "id": file_id,
                    "filename": name,
                    "size": len(data),
                    "url": url,
                    "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
                    "content_type": content_type or guessed,
                }
            )
        return out


def _files(files: Iterable[discord.File] | None) -> list[tuple[str, bytes]]:
    out = []
    for f in files or ():
        f.reset()
        out.append((f.filename or "", f.fp.read()))
        f.reset()
    return out


def _form_json(form: Iterable[dict[str, Any]] | None) -> Any:
    for part in form or ():
        if part.get("name") == "payload_json":
            return json.loads(part["value"])
    return None


class RecordingHTTP(HTTPClient):
    """The bot's REST client: records each call and answers like Discord, offline."""

    def __init__(self, fake: FakeDiscord, *, latency: float = 0.0) -> None:
        super().__init__(asyncio.get_running_loop())
        self.fake = fake
        self.latency = latency

    async def static_login(self, token: str) -> Any:  # no aiohttp session: nothing goes out
        self.token = token
        return await self.request(Route("GET", "/users/@me"))

    async def get_from_cdn(self, url: str) -> bytes:
        """An attachment's bytes (``Attachment.read``), recorded as ``GET <url>``: downloaded
        by discord.py itself from the loopback CDN, or else from memory."""
        self.fake.calls.append(Call("cdn", "GET", url, {}, None))
        if url.startswith("http://127.0.0.1:"):
            session = getattr(self, "_HTTPClient__session", MISSING)
            if session is MISSING or session.closed:  # no static_login here: no session yet
                connector = aiohttp.TCPConnector(force_close=True)
                self._HTTPClient__session = aiohttp.ClientSession(connector=connector)
            return await super().get_from_cdn(url)
        if url not in self.fake.cdn:
            raise http_error(404, "asset not found")
        return self.fake.cdn[url]

    async def request(
        self,
        route: Route,
        *,
        files: Sequence[discord.File] | None = None,
        form: Iterable[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        body = kwargs.get("json")
        if body is None:
            body = _form_json(form)
        uploads = _files(files)
        call = self.fake.record("rest", route, body, uploads)
        if self.latency:
            await asyncio.sleep(self.latency)
        call.response = self._answer(call, body or {}, uploads)
        return call.response

    def _answer(self, call: Call, body: dict[str, Any], uploads: Uploads) -> Any:
        fake, p = self.fake, call.params
        match call.key:
            case "GET /users/@me":
                return BOT
            case "GET /oauth2/applications/@me":
                return APP_INFO
            case (
                "PUT /applications/{application_id}/commands"
                | "PUT /applications/{application_id}/guilds/{guild_id}/commands"
            ):
                return [
                    {**c, "id": str(fake.next_id()), "application_id": str(APP_ID), "version": "1"}
                    for c in body
                ]
            case "POST /channels/{channel_id}/messages":
                return fake.message(p["channel_id"], body, uploads)
            case "PATCH /channels/{channel_id}/messages/{message_id}":
                return fake.edit(p["message_id"], body, uploads)
            case "DELETE /channels/{channel_id}/messages/{message_id}":
                if fake.messages.pop(int(p["message_id"]), None) is None:
                    raise http_error(404, "Unknown Message", 10008)
                return None
            case "POST /channels/{channel_id}/messages/{message_id}/threads":
                # A thread started from a message has that message's id.
                thread = _thread(int(p["message_id"]), int(p["channel_id"]), body["name"])
                fake.threads[int(thread["id"])] = thread
                return thread
            case "GET /channels/{channel_id}":
                if int(p["channel_id"]) in fake.threads:
                    return fake.threads[int(p["channel_id"])]
                raise http_error(404, "Unknown Channel", 10003)
            case "PATCH /channels/{channel_id}":
                thread = fake.threads[int(p["channel_id"])]
                if "archived" in body:
                    thread["thread_metadata"]["archived"] = body["archived"]
                return thread
            case "DELETE /channels/{channel_id}":
                return fake.threads.pop(int(p["channel_id"]), None)
        return None


def _thread(thread_id: int, parent_id: int, name: str, owner: int = APP_ID) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(GUILD_ID),
        "parent_id": str(parent_id),
        "owner_id": str(owner),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _now(),
            "locked": False,
        },
    }


class FakeWebhooks(AsyncWebhookAdapter):
    """Interaction callbacks, the original response and followups, answered like Discord."""

    def __init__(self, fake: FakeDiscord, *, latency: float = 0.0) -> None:
        super().__init__()
        self.fake = fake
        self.latency = latency

    async def request(self, route: Route, session: Any, **kwargs: Any) -> Any:
        body = kwargs.get("payload")
        if body is None:
            body = _form_json(kwargs.get("multipart"))
        uploads = _files(kwargs.get("files"))
        call = self.fake.record("webhook", route, body, uploads)
        if self.latency:
            await asyncio.sleep(self.latency)
        call.response = self._answer(call, body or {}, uploads)
        return call.response

    def _answer(self, call: Call, body: dict[str, Any], uploads: Uploads) -> Any:
        fake, token = self.fake, call.params.get("webhook_token", "")
        interaction = fake.interactions.get(token, {})
        channel_id = interaction.get("channel_id", "0")
        made = discord.utils.snowflake_time(int(interaction.get("id", 0)))
        expired = discord.utils.utcnow() - made > TOKEN_LIFE
        if expired and not call.path.endswith("/callback"):
            raise http_error(401, "Invalid Webhook Token", 50027)
        match call.key:
            case "POST /interactions/{webhook_id}/{webhook_token}/callback":
                kind, data = body["type"], body.get("data") or {}
                result: dict[str, Any] = {
                    "interaction": {"id": call.params["webhook_id"], "type": 2}
                }
                if kind == 9:  # a modal: the person sees the form
                    if token in fake.originals or token in fake.modals:
                        raise http_error(400, "Interaction has already been acknowledged", 40060)
                    fake.modals[token] = data
                if kind in (4, 5):  # a message, or "thinking…" that becomes one
                    flags = (data.get("flags") or 0) | (128 if kind == 5 else 0)
                    message = fake.message(channel_id, {**data, "flags": flags}, uploads)
                    fake.originals[token] = message
                    result["interaction"].update(
                        response_message_id=message["id"],
                        response_message_loading=kind == 5,
                        response_message_ephemeral=bool(flags & 64),
                    )
                    result["resource"] = {"type": kind, "message": message}
                return result
            case "GET /webhooks/{webhook_id}/{webhook_token}/messages/@original":
                return fake.originals[token]
            case "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original":
                original = fake.originals[token]
                original["flags"] = (original.get("flags") or 0) & ~128
                return fake.edit(original["id"], body, uploads)
            case "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/@original":
                fake.originals.pop(token, None)
                return None
            case "POST /webhooks/{webhook_id}/{webhook_token}":
                return fake.message(channel_id, body, uploads)
            case "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}":
                return fake.edit(call.params["message_id"], body, uploads)
        return None


class FakeGateway:
    """Gateway events for one client, parsed by its own connection state."""

    def __init__(self, fake: FakeDiscord, client: discord.Client) -> None:
        self.fake = fake
        self.client = client
        self.state = client._connection

    def _parse(self, event: str, payload: dict[str, Any]) -> None:
        async_context.set(self.fake.webhooks)  # inherited by the tasks this event spawns
        getattr(self.state, f"parse_{event}")(payload)

    def guild_create(self, *, threads: Sequence[dict[str, Any]] = ()) -> None:
        self._parse(
            "guild_create",
            {
                "id": str(GUILD_ID),
                "name": "test server",
                "owner_id": ALICE["id"],
                "member_count": 3,
                "roles": [
                    {
                        "id": str(GUILD_ID),
                        "name": "@everyone",
                        "permissions": ALL_PERMISSIONS,
                        "position": 0,
                    }
                ],
                "channels": [_text_channel()],
                "threads": list(threads),
                "members": [],
                "emojis": [],
                "stickers": [],
                "features": [],
            },
        )

    def thread_create(self, thread_id: int) -> None:
        self._parse("thread_create", {**self.fake.threads[thread_id], "newly_created": True})

    def message(
        self,
        channel_id: int,
        content: str,
        *,
        author: dict[str, Any] = ALICE,
        guild: bool = True,
        kind: int = 0,
        files: Sequence[tuple[str, str, bytes | str]] = (),
    ) -> dict[str, Any]:
        """A message someone sent; ``files`` are its attachments (name, content type, bytes
        or text), served by the fake's CDN."""
        attachments = [
            a for name, kind, text in files for a in self.fake._attachments([(name, text)], kind)
        ]
        payload: dict[str, Any] = {
            "id": str(self.fake.next_id()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": False,
            "type": kind,
            "flags": 0,
            "components": [],
        }
        if guild:
            payload["guild_id"] = str(GUILD_ID)
            payload["member"] = {"roles": [], "joined_at": _now(), "deaf": False, "mute": False}
        self._parse("message_create", payload)
        return payload

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user: dict[str, Any],
        channel_id: int,
        permissions: str,
        member_permissions: str = ALL_PERMISSIONS,
        message: dict[str, Any] | None = None,
        dm: bool = False,
        age: datetime.timedelta = datetime.timedelta(0),
    ) -> str:
        if dm:
            channel = {"id": str(channel_id), "type": 1, "recipients": [user]}
        elif channel_id in self.fake.threads:
            channel = self.fake.threads[channel_id]
        else:
            channel = _text_channel(channel_id)
        payload = interaction_payload(
            self.fake.next_id(age=age),
            kind,
            data,
            user=user,
            channel=channel,
            permissions=permissions,
            member_permissions=member_permissions,
        )
        if message is not None:
            payload["message"] = message
        self.fake.interactions[payload["token"]] = payload
        self._parse("interaction_create", payload)
        return str(payload["token"])

    def slash(
        self,
        name: str,
        *,
        user: dict[str, Any] = ALICE,
        channel_id: int = CHANNEL_ID,
        permissions: str = ALL_PERMISSIONS,
        member_permissions: str = ALL_PERMISSIONS,
        subcommand: str | None = None,
        focused: str | None = None,
        dm: bool = False,
        **options: Any,
    ) -> str:
        """A slash command (or its autocomplete, when ``focused`` names an option);
        ``permissions`` are the bot's in the channel, ``member_permissions`` the user's."""
        kinds = {str: 3, int: 4, bool: 5}
        opts = [
            {
                "name": key,
                "type": kinds[type(value)],
                "value": value,
                **({"focused": True} if key == focused else {}),
            }
            for key, value in options.items()
        ]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data = {"id": str(self.fake.next_id()), "name": name, "type": 1, "options": opts}
        kind = 4 if focused else 2
        return self._interaction(
            kind,
            data,
            user=user,
            channel_id=channel_id,
            permissions=permissions,
            member_permissions=member_permissions,
            dm=dm,
        )

    def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: dict[str, Any] = ALICE,
        member_permissions: str = ALL_PERMISSIONS,
        age: datetime.timedelta = datetime.timedelta(0),
    ) -> str:
        """A click on a button of a message the bot posted (``age`` ago: the work it starts
        ends that much later, as far as the token's life goes)."""
        message = self.fake.messages[int(message_id)]
        return self._interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user=user,
            channel_id=int(message["channel_id"]),
            permissions=ALL_PERMISSIONS,
            member_permissions=member_permissions,
            message=message,
            age=age,
        )

    def submit(
        self,
        token: str,
        values: dict[str, str],
        *,
        user: dict[str, Any] = ALICE,
        member_permissions: str = ALL_PERMISSIONS,
    ) -> str:
        """Submit the modal the interaction ``token`` was answered with, its text inputs
        filled with ``values`` by custom id (as Discord sends them: each in its label)."""
        opened = self.fake.interactions[token]
        modal = self.fake.modals[token]
        inputs = [c for c in _walk_modal(modal["components"]) if c.get("type") == 4]
        ids = itertools.count(1)
        components = [
            {
                "type": 18,
                "id": next(ids),
                "component": {
                    "type": 4,
                    "id": next(ids),
                    "custom_id": c["custom_id"],
                    "value": values.get(c["custom_id"], ""),
                },
            }
            for c in inputs
        ]
        return self._interaction(
            5,
            {"custom_id": modal["custom_id"], "components": components},
            user=user,
            channel_id=int(opened["channel_id"]),
            permissions=ALL_PERMISSIONS,
            member_permissions=member_permissions,
            message=opened.get("message"),
        )


def _walk_modal(components: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A modal's components: labels hold one ``component``, rows several."""
    for component in components:
        yield component
        inner = [component["component"]] if "component" in component else []
        yield from _walk_modal([*inner, *(component.get("components") or [])])


def interaction_payload(
    interaction_id: int,
    kind: int,
    data: dict[str, Any],
    *,
    user: dict[str, Any],
    channel: dict[str, Any],
    permissions: str = ALL_PERMISSIONS,
    member_permissions: str = ALL_PERMISSIONS,
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload: in a server's channel, or in a DM (channel type 1)."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": kind,
        "data": data,
        "channel": channel,
        "channel_id": channel["id"],
        "token": f"token-{interaction_id}",
        "version": 1,
        "app_permissions": permissions,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
    }
    if channel["type"] == 1:  # a DM: no guild, no member, the user directly
        payload.update(user=user, context=1, authorizing_integration_owners={"1": user["id"]})
    else:
        payload.update(
            guild_id=str(GUILD_ID),
            guild_locale="en-US",
            context=0,
            authorizing_integration_owners={"0": str(GUILD_ID)},
            member={
                "user": user,
                "roles": [],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": member_permissions,
            },
        )
    return payload


def _text_channel(channel_id: int = CHANNEL_ID) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": "general",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


async def settle(limit: float = 5.0) -> None:
    """Wait until every other task of the loop has finished (the bot's work is done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    me = asyncio.current_task()
    while True:
        others = {t for t in asyncio.all_tasks() if t is not me and not t.done()}
        if not others:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"tasks still running: {others}")
        await asyncio.wait(others, timeout=deadline - loop.time())


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only for exactly "application/json", as Discord sends it
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class DiscordServer:
    """Discord's REST API and gateway on 127.0.0.1, for the adapter's real start-up path.

    ``api_url`` is what ``DISCORD_API_URL`` would hold; ``GET /gateway/bot`` names this
    server's own websocket, which says HELLO, records IDENTIFY (every one in ``identifies``),
    answers it with READY (for the shard the IDENTIFY names), answers RESUME with RESUMED and
    acknowledges heartbeats; while ``open`` is cleared a new connection gets no HELLO.
    ``dispatch`` sends a gateway event to the connected bot.

    Refusals, as Discord answers them: ``refuse_token`` answers ``GET /users/@me`` 401 (a bad
    token); ``close_with`` closes the gateway with that code instead of READY (4014: a
    privileged intent not enabled; 4004: authentication failed); :meth:`drop` closes the
    connection with a code the bot reconnects after; :meth:`throttle` answers the next calls
    of a REST path 429 with ``retry_after``, as Discord's rate limiter does.
    """

    def __init__(self, *, refuse_token: bool = False, close_with: int | None = None) -> None:
        self.refuse_token = refuse_token
        self.close_with = close_with
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.bodies: list[Any] = []
        self.identify: dict[str, Any] | None = None
        self.identifies: list[dict[str, Any]] = []
        self.identified = asyncio.Event()
        self.resumed = asyncio.Event()
        #: cleared, a new gateway connection waits before HELLO (a bot that is reconnecting)
        self.open = asyncio.Event()
        self.open.set()
        self.callback = asyncio.Event()
        self.throttled: list[str] = []  # the paths answered 429
        self._throttles: dict[str, list[float]] = {}
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.api_url = ""
        self._sequence = 0

    def throttle(self, path: str, retry_after: float = 0.05, times: int = 1) -> None:
        """The next ``times`` calls of ``path`` (``/users/@me``) answer 429."""
        self._throttles.setdefault(path, []).extend([retry_after] * times)

    async def drop(self, code: int = 4000) -> None:
        """Close the bot's gateway connection with ``code`` (4000, unknown error: it resumes)."""
        assert self._socket is not None, "no bot is connected"
        await self._socket.close(code=code)

    async def __aenter__(self) -> DiscordServer:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self.api_url = f"{self.base}/api/v10"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path, request.headers.get("Authorization", "")))
        body = await request.json() if request.can_read_body else None
        self.bodies.append(body)
        if waits := self._throttles.get(path):
            self.throttled.append(path)
            wait = waits.pop(0)
            limited = _json(
                {"message": "You are being rate limited.", "retry_after": wait, "global": False},
                status=429,
            )
            limited.headers.update(
                {
                    "Retry-After": str(max(1, round(wait))),
                    "Via": "1.1 google",  # discord.py takes a 429 without it for a ban
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(wait),
                    "X-RateLimit-Scope": "user",
                }
            )
            return limited
        if path == "/users/@me":
            if self.refuse_token:
                return _json({"message": "401: Unauthorized", "code": 0}, status=401)
            return _json(BOT)
        if path == "/oauth2/applications/@me":
            return _json(APP_INFO)
        if path == "/gateway/bot":
            return _json(
                {
                    "url": self.base.replace("http", "ws") + "/gateway",
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if path.endswith("/commands"):
            return _json(
                [{**c, "id": str(i + 1), "application_id": str(APP_ID)} for i, c in enumerate(body)]
            )
        if path.endswith("/callback"):
            self.callback.set()
            return _json({"interaction": {"id": path.split("/")[2], "type": 4}})
        return _json({"message": "Unknown route", "code": 0}, status=404)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await self.open.wait()
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 45_000}})
        async for frame in socket:
            message = json.loads(frame.data)
            if message["op"] == 2:
                self.identify = message
                self.identifies.append(message)
                self.identified.set()
                if self.close_with is not None:
                    await socket.close(code=self.close_with)
                    break
                await self._send(socket, "READY", self._ready(message["d"].get("shard")))
            elif message["op"] == 6:  # RESUME
                self.resumed.set()
                await self._send(socket, "RESUMED", {})
            elif message["op"] == 1:
                await socket.send_json({"op": 11})
        return socket

    def _ready(self, shard: list[int] | None) -> dict[str, Any]:
        ready: dict[str, Any] = {
            "v": 10,
            "user": BOT,
            "guilds": [],
            "session_id": f"session-{len(self.identifies)}",
            "resume_gateway_url": self.base.replace("http", "ws") + "/gateway",
            "application": {"id": str(APP_ID), "flags": 0},
        }
        if shard is not None:
            ready["shard"] = shard
        return ready

    async def _send(self, socket: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._sequence += 1
        await socket.send_json({"op": 0, "s": self._sequence, "t": event, "d": data})

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._socket is not None, "no bot is connected"
        await self._send(self._socket, event, data)
