"""Discord without the internet, driving real discord.py objects (pinned: discord.py 2.7).

- :class:`RecordingHTTP` is a ``discord.http.HTTPClient`` whose ``request`` records every REST
  call (sends, edits, thread creation, uploads) and answers with realistic payloads instead of
  reaching Discord; ``fail_next`` makes a route answer with an error such as 403.
- :class:`FakeWebhooks` is an ``AsyncWebhookAdapter`` for interaction callbacks (defer, the
  original response) and followups; install it with ``async_context.set`` — the gateway helpers
  below do so before each event, so the tasks discord.py spawns for it inherit it.
- :class:`FakeGateway` injects gateway events through the connection state's ``parse_*``
  methods, from raw payloads as Discord sends them: a guild with a text channel, thread
  creation, messages, slash commands, autocomplete and button clicks.

Typical use::

    fake = FakeDiscord()
    app = await build(config_with_a_discord_token, discord_http=fake.http)
    [adapter] = app.adapters
    await adapter.client.login("token")            # setup_hook: buttons, command sync
    gateway = fake.gateway(adapter.client)
    gateway.guild_create()
    token = await gateway.slash("code", prompt="add two numbers")
    await settle()
    assert fake.calls_to("POST /channels/{channel_id}/messages/{message_id}/threads")
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord
from aiohttp import web
from discord.http import HTTPClient, Route
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
    "http_error",
    "interaction_payload",
    "settle",
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

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def content(self) -> str:
        body = self.json or {}
        if "data" in body and isinstance(body["data"], dict):  # interaction callback
            body = body["data"]
        return str(body.get("content") or "")


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


class FakeDiscord:
    """Shared state of one fake Discord: ids, messages, threads, and every call in order."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}  # id -> latest payload
        self.threads: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> interaction payload
        self.originals: dict[str, dict[str, Any]] = {}  # token -> original response
        self.http = RecordingHTTP(self, latency=latency)
        self.webhooks = FakeWebhooks(self, latency=latency)
        self._failures: dict[str, deque[Exception]] = {}
        self._new_call = asyncio.Event()

    def next_id(self) -> int:
        return next(self._ids)

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

    def record(self, via: str, route: Route, body: Any, files: list[tuple[str, str]]) -> Call:
        call = Call(
            via=via,
            method=route.method,
            path=route.path,
            params=_route_params(route.path, route.url),
            json=body,
            files=files,
            at=asyncio.get_running_loop().time(),
        )
        self.calls.append(call)
        self._new_call.set()
        failures = self._failures.get(call.key)
        if failures:
            raise failures.popleft()
        return call

    def message(
        self, channel_id: int | str, body: dict[str, Any], files: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """A message payload as Discord returns it for a message the bot sent."""
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
        self, message_id: int | str, body: dict[str, Any], files: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        payload = self.messages[int(message_id)]
        for name in ("content", "components", "flags"):
            if name in body:
                payload[name] = body[name] if body[name] is not None else payload.get(name)
        if "attachments" in body or files:
            payload["attachments"] = self._attachments(files)
        payload["edited_timestamp"] = _now()
        return payload

    def _attachments(self, files: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(self.next_id()),
                "filename": name,
                "size": len(text.encode()),
                "url": f"https://cdn.discordapp.com/attachments/{name}",
                "proxy_url": f"https://media.discordapp.net/attachments/{name}",
            }
            for name, text in files
        ]


def _files(files: Iterable[discord.File] | None) -> list[tuple[str, str]]:
    out = []
    for f in files or ():
        f.reset()
        out.append((f.filename or "", f.fp.read().decode()))
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

    def _answer(self, call: Call, body: dict[str, Any], uploads: list[tuple[str, str]]) -> Any:
        fake, p = self.fake, call.params
        match call.key:
            case "GET /users/@me":
                return BOT
            case "GET /oauth2/applications/@me":
                return APP_INFO
            case "PUT /applications/{application_id}/commands":
                return [
                    {**c, "id": str(fake.next_id()), "application_id": str(APP_ID), "version": "1"}
                    for c in body
                ]
            case "POST /channels/{channel_id}/messages":
                return fake.message(p["channel_id"], body, uploads)
            case "PATCH /channels/{channel_id}/messages/{message_id}":
                return fake.edit(p["message_id"], body, uploads)
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

    def _answer(self, call: Call, body: dict[str, Any], uploads: list[tuple[str, str]]) -> Any:
        fake, token = self.fake, call.params.get("webhook_token", "")
        channel_id = fake.interactions.get(token, {}).get("channel_id", "0")
        match call.key:
            case "POST /interactions/{webhook_id}/{webhook_token}/callback":
                kind, data = body["type"], body.get("data") or {}
                result: dict[str, Any] = {
                    "interaction": {"id": call.params["webhook_id"], "type": 2}
                }
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
    ) -> dict[str, Any]:
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
            "attachments": [],
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
        message: dict[str, Any] | None = None,
        dm: bool = False,
    ) -> str:
        if dm:
            channel = {"id": str(channel_id), "type": 1, "recipients": [user]}
        elif channel_id in self.fake.threads:
            channel = self.fake.threads[channel_id]
        else:
            channel = _text_channel(channel_id)
        payload = interaction_payload(
            self.fake.next_id(), kind, data, user=user, channel=channel, permissions=permissions
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
        subcommand: str | None = None,
        focused: str | None = None,
        dm: bool = False,
        **options: Any,
    ) -> str:
        """A slash command (or its autocomplete, when ``focused`` names an option)."""
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
            kind, data, user=user, channel_id=channel_id, permissions=permissions, dm=dm
        )

    def click(self, message_id: int, custom_id: str, *, user: dict[str, Any] = ALICE) -> str:
        """A click on a button of a message the bot posted."""
        message = self.fake.messages[int(message_id)]
        return self._interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user=user,
            channel_id=int(message["channel_id"]),
            permissions=ALL_PERMISSIONS,
            message=message,
        )


def interaction_payload(
    interaction_id: int,
    kind: int,
    data: dict[str, Any],
    *,
    user: dict[str, Any],
    channel: dict[str, Any],
    permissions: str = ALL_PERMISSIONS,
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
                "permissions": ALL_PERMISSIONS,
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
    server's own websocket, which says HELLO, records IDENTIFY and acknowledges heartbeats.
    ``dispatch`` sends a gateway event to the connected bot.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.bodies: list[Any] = []
        self.identify: dict[str, Any] | None = None
        self.identified = asyncio.Event()
        self.callback = asyncio.Event()
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.api_url = ""
        self._sequence = 0

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
        if path == "/users/@me":
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
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 45_000}})
        async for frame in socket:
            message = json.loads(frame.data)
            if message["op"] == 2:
                self.identify = message
                self.identified.set()
            elif message["op"] == 1:
                await socket.send_json({"op": 11})
        return socket

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._socket is not None, "no bot is connected"
        self._sequence += 1
        await self._socket.send_json({"op": 0, "s": self._sequence, "t": event, "d": data})
