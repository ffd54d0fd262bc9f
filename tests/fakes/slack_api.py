"""A loopback Slack: the Web API methods codethread calls, response URLs and Socket Mode.

In a test::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        await client.chat_postMessage(channel="C1", text="hi")
        assert slack.calls_to("chat.postMessage")[0].params["text"] == "hi"

Every request is recorded as a :class:`Call` (method, merged query/form/JSON parameters, the
token it came with, a monotonic timestamp). The fake keeps the messages the bot posted, so a
test can read a thread as it now stands (:meth:`FakeSlack.thread`), with edits applied and
deletions gone. :meth:`FakeSlack.fail` makes the next calls of a method answer a Slack error,
:meth:`FakeSlack.rate_limit` makes them answer HTTP 429 with ``Retry-After``.

Response URLs (slash commands, buttons) are ``slack.response_url(name)``; what the app posts
there is in :attr:`FakeSlack.responses`. Socket Mode: ``apps.connections.open`` hands out a
``ws://127.0.0.1`` URL on this server; :meth:`FakeSlack.send_envelope` pushes an envelope to the
connected client and returns its acknowledgement.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["BOT_ID", "BOT_USER", "TEAM", "Call", "FakeSlack", "Posted"]

TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float  # time.monotonic() when it arrived


@dataclass(slots=True)
class Posted:
    """A message as it now stands in the fake workspace."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    user: str = BOT_USER
    files: list[dict[str, Any]] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)  # when it was posted

    def body(self) -> str:
        """The text a person would read: the markdown/section blocks, else ``text``."""
        parts: list[str] = []
        for block in self.blocks:
            if block.get("type") == "markdown":
                parts.append(block["text"])
            elif block.get("type") == "section" and "text" in block:
                parts.append(block["text"]["text"])
            elif block.get("type") == "context":
                parts.extend(e.get("text", "") for e in block.get("elements", []))
        return "\n".join(parts) if parts else self.text

    def action_ids(self) -> list[str]:
        return [
            element["action_id"]
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block["elements"]
        ]


_JSON_FIELDS = frozenset({"blocks", "attachments", "files", "view"})


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    """Form-encoded calls carry structured fields as JSON strings; decode those."""
    return {
        k: json.loads(v) if k in _JSON_FIELDS and isinstance(v, str) else v
        for k, v in params.items()
    }


class FakeSlack:
    def __init__(
        self,
        *,
        team: str = TEAM,
        bot_user: str = BOT_USER,
        bot_id: str = BOT_ID,
        workspace_url: str = "https://fake-team.slack.test/",
        latency: float = 0.0,
    ) -> None:
        self.team = team
        self.bot_user = bot_user
        self.bot_id = bot_id
        self.workspace_url = workspace_url
        #: seconds every Web API call waits before answering (for benchmarks)
        self.latency = latency
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.uploads: dict[str, bytes] = {}
        self.port = 0
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._failures: dict[str, list[str]] = {}
        self._limits: dict[str, list[int]] = {}
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{name}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- scripting and reading ---------------------------------------------------------------

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        self._failures.setdefault(method, []).extend([error] * times)

    def rate_limit(self, method: str, retry_after: int = 0, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer HTTP 429 with ``Retry-After``."""
        self._limits.setdefault(method, []).extend([retry_after] * times)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Posted]:
        """The bot's replies in a thread (parent excluded), oldest first."""
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel == channel and m.thread_ts == thread_ts and m.ts != thread_ts
            ),
            key=lambda m: float(m.ts),
        )

    def top_level(self, channel: str) -> list[Posted]:
        return sorted(
            (m for m in self.messages.values() if m.channel == channel and m.thread_ts is None),
            key=lambda m: float(m.ts),
        )

    def add_user_message(self, channel: str, user: str, text: str, thread_ts: str) -> str:
        """Record a person's message (for conversations.replies); returns its ts."""
        ts = self._next_ts()
        self.messages[(channel, ts)] = Posted(
            channel=channel, ts=ts, text=text, blocks=[], thread_ts=thread_ts, user=user
        )
        return ts

    # -- Web API -----------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(await request.post())
        params = _decode(params)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.pop("token", None)
        self.calls.append(Call(method, params, token, time.monotonic()))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._limits.get(method):
            retry_after = self._limits[method].pop(0)
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if self._failures.get(method):
            return web.json_response({"ok": False, "error": self._failures[method].pop(0)})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        result: dict[str, Any] = handler(params)
        return web.json_response({"ok": "error" not in result, **result})

    def _m_auth_test(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": self.workspace_url,
            "team": "Fake Team",
            "user": "codethread",
            "team_id": self.team,
            "user_id": self.bot_user,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, p: Mapping[str, Any]) -> dict[str, Any]:
        ts = self._next_ts()
        message = Posted(
            channel=p["channel"],
            ts=ts,
            text=p.get("text") or "",
            blocks=p.get("blocks") or [],
            thread_ts=p.get("thread_ts"),
        )
        self.messages[(message.channel, ts)] = message
        return {"channel": message.channel, "ts": ts, "message": {"text": message.text}}

    def _m_chat_update(self, p: Mapping[str, Any]) -> dict[str, Any]:
        message = self.messages.get((p["channel"], p["ts"]))
        if message is None:
            return {"error": "message_not_found"}
        message.text = p.get("text") or ""
        message.blocks = p.get("blocks") or []
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_delete(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if self.messages.pop((p["channel"], p["ts"]), None) is None:
            return {"error": "message_not_found"}
        return {"channel": p["channel"], "ts": p["ts"]}

    def _m_chat_postEphemeral(self, p: Mapping[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(dict(p))
        return {"message_ts": self._next_ts()}

    def _m_chat_getPermalink(self, p: Mapping[str, Any]) -> dict[str, Any]:
        ts = str(p["message_ts"]).replace(".", "")
        return {
            "channel": p["channel"],
            "permalink": f"{self.workspace_url}archives/{p['channel']}/p{ts}",
        }

    def _m_conversations_replies(self, p: Mapping[str, Any]) -> dict[str, Any]:
        channel, ts = p["channel"], p["ts"]
        found = [
            m
            for m in self.messages.values()
            if m.channel == channel and (m.ts == ts or m.thread_ts == ts)
        ]
        found.sort(key=lambda m: float(m.ts))
        messages = []
        for m in found:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "user": m.user, "text": m.text}
            if m.user == self.bot_user:
                item["bot_id"] = self.bot_id
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if m.files:
                item["files"] = m.files
            messages.append(item)
        return {"messages": messages, "has_more": False}

    def _m_views_open(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if not p.get("trigger_id"):
            return {"error": "invalid_trigger_id"}
        return {"view": {"id": f"V{next(self._ids)}", **p["view"]}}

    def _m_files_getUploadURLExternal(self, p: Mapping[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids)}"
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: Mapping[str, Any]) -> dict[str, Any]:
        files = [{"id": f["id"], "title": f.get("title")} for f in p["files"]]
        channel, thread_ts = p.get("channel_id"), p.get("thread_ts")
        if channel:
            ts = self._next_ts()
            self.messages[(channel, ts)] = Posted(
                channel=channel,
                ts=ts,
                text=p.get("initial_comment") or "",
                blocks=[],
                thread_ts=thread_ts,
                files=files,
            )
        return {"files": files}

    def _m_files_delete(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if self.uploads.pop(p["file"], None) is None:
            return {"error": "file_not_found"}
        return {}

    def _m_apps_connections_open(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.uploads[request.match_info["file_id"]] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["name"], await request.json()))
        return web.Response(text="ok")

    # -- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1})
        self._connected.set()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            future = self._acks.pop(ack.get("envelope_id", ""), None)
            if future is not None and not future.done():
                future.set_result(ack)
        return ws

    async def connected(self) -> None:
        await self._connected.wait()

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        wait: float = 5.0,
    ) -> dict[str, Any]:
        """Push one envelope (``events_api``, ``slash_commands``, ``interactive``); its ack."""
        envelope_id = f"env-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": retry_attempt,
                "retry_reason": retry_reason,
            }
        )
        return await asyncio.wait_for(future, wait)
