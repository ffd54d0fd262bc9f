"""A loopback Slack: the Web API methods codethread calls, response URLs and Socket Mode.

In a test::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        await client.chat_postMessage(channel="C1", text="hi")
        assert slack.calls_to("chat.postMessage")[0].params["text"] == "hi"

Every request is recorded as a :class:`Call` (method, merged query/form/JSON parameters, the
token it came with, a monotonic timestamp). The fake keeps the messages the bot posted, so a
test can read a thread as it now stands (:meth:`FakeSlack.thread`), with edits applied,
streams (``chat.startStream``/``appendStream``/``stopStream``) as they stand and deletions
gone. :meth:`FakeSlack.fail` makes the next calls of a method answer a Slack error,
:meth:`FakeSlack.rate_limit` makes them answer HTTP 429 with ``Retry-After``;
``FakeSlack(limits=SLACK_RATE_LIMITS)`` enforces Slack's documented rate limits the same way
(every 429 is in :attr:`FakeSlack.limited`).

Blocks are checked as Slack checks them (:func:`block_errors`: the block types each surface
takes, ``markdown`` not in ephemeral and ``response_url`` messages, Slack's text lengths, 50
blocks, 12,000 characters of markdown a message): a message Slack would refuse is answered
``invalid_blocks`` (a ``response_url``: HTTP 400) and listed in :attr:`FakeSlack.invalid`, so
it fails a test here.

Files: what the bot uploads (``files.getUploadURLExternal``, the upload URL,
``files.completeUploadExternal``) is kept as a :class:`SlackFile` in :attr:`FakeSlack.files`
with its bytes, name, title, alt text, channel and thread (its bytes also in
:attr:`FakeSlack.uploads`), and the message Slack posts for an upload holds its file objects.
A file a person posts is :meth:`FakeSlack.add_file` (its file object goes in the event's
``files``); its ``url_private``/``url_private_download`` are served on this server to the bot
token only (anything else gets Slack's sign-in page and is listed in
:attr:`FakeSlack.invalid`), and every download is in :attr:`FakeSlack.downloads`.

Modals: ``views.open`` checks the view as Slack does (:func:`view_errors`; a trigger works
once) and keeps it in :attr:`FakeSlack.views`; :meth:`FakeSlack.submission` builds the
``view_submission`` payload a person's submit sends, and :meth:`FakeSlack.check_view_answer`
checks the app's answer to it (errors must name input blocks of the view).

Response URLs (slash commands, buttons) are ``slack.response_url(name)``; what the app posts
there is in :attr:`FakeSlack.responses`. Socket Mode: ``apps.connections.open`` hands out a
``ws://127.0.0.1`` URL on this server; :meth:`FakeSlack.send_envelope` pushes an envelope to the
connected client and returns its acknowledgement.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

__all__ = [
    "BOT_ID",
    "BOT_USER",
    "SLACK_RATE_LIMITS",
    "TEAM",
    "Call",
    "FakeSlack",
    "Posted",
    "SlackFile",
    "Tier",
    "block_errors",
    "view_errors",
]

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
    streaming: bool = False  # started with chat.startStream and not stopped yet

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


@dataclass(slots=True)
class SlackFile:
    """A file in the fake workspace: one the bot uploaded, or one a person posted."""

    id: str
    name: str
    data: bytes = b""
    title: str = ""
    user: str = BOT_USER
    length: int | None = None  # what files.getUploadURLExternal was told
    alt_txt: str | None = None
    snippet_type: str | None = None
    uploaded: bool = False  # its bytes reached the upload URL
    channel: str | None = None  # shared there by files.completeUploadExternal
    thread_ts: str | None = None
    mimetype: str = "application/octet-stream"


_MIMETYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".csv": "text/csv", ".txt": "text/plain", ".json": "application/json",
    ".py": "text/x-python", ".html": "text/html",
}  # fmt: skip


def _mimetype(name: str) -> str:
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return _MIMETYPES.get(suffix, "application/octet-stream")


_SIGN_IN = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"
_JSON_FIELDS = frozenset({"blocks", "attachments", "files", "view", "prompts"})


@dataclass(frozen=True, slots=True)
class Tier:
    """A rate limit: ``per_minute`` on average, ``burst`` at once; per workspace unless
    ``per_channel``; methods with the same ``group`` are counted together."""

    per_minute: float
    burst: float
    per_channel: bool = False
    group: str = ""


#: Slack's documented limits: ``chat.update`` and ``chat.delete`` Tier 3 (50+ a minute per
#: workspace), ``chat.appendStream`` Tier 4 (100+), one new message a second per channel with
#: short bursts (``chat.postMessage``; a streamed message's start is counted with it)
SLACK_RATE_LIMITS = {
    "chat.update": Tier(50, 50),
    "chat.delete": Tier(50, 50),
    "chat.appendStream": Tier(100, 100),
    "chat.postMessage": Tier(60, 3, per_channel=True, group="message"),
    "chat.startStream": Tier(60, 3, per_channel=True, group="message"),
}

# -- Block Kit, as Slack checks it ------------------------------------------------------------

_MESSAGE_BLOCKS = frozenset(
    {"actions", "context", "context_actions", "divider", "file", "header", "image", "markdown",
     "rich_text", "section", "table", "video"}
)  # fmt: skip
#: the block types each kind of message takes (the markdown block only in posted messages)
_SURFACES = {
    "message": _MESSAGE_BLOCKS,
    "ephemeral": _MESSAGE_BLOCKS - {"markdown", "file"},
    "response_url": _MESSAGE_BLOCKS - {"markdown", "file"},
}
_BUTTON_STYLES = (None, "primary", "danger")


def _text_errors(where: str, text: Any, limit: int, kinds: tuple[str, ...]) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in kinds:
        return [f"{where}: must be a text object of type {' or '.join(kinds)}"]
    body = text.get("text")
    if not isinstance(body, str) or not body:
        return [f"{where}: text must be a non-empty string"]
    return [f"{where}: more than {limit} characters"] if len(body) > limit else []


def _button_errors(where: str, button: dict[str, Any]) -> list[str]:
    if button.get("type") != "button":
        return []
    errors = _text_errors(f"{where}.text", button.get("text"), 75, ("plain_text",))
    if len(str(button.get("action_id", ""))) > 255:
        errors.append(f"{where}: action_id longer than 255")
    if len(str(button.get("value", ""))) > 2000:
        errors.append(f"{where}: value longer than 2000")
    if button.get("style") not in _BUTTON_STYLES:
        errors.append(f"{where}: style must be primary or danger")
    confirm = button.get("confirm")
    if confirm is not None:
        for name, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            errors += _text_errors(
                f"{where}.confirm.{name}", confirm.get(name), limit, ("plain_text",)
            )
    return errors


def _context_element_errors(where: str, element: dict[str, Any]) -> list[str]:
    if element.get("type") == "image":
        return []
    return _text_errors(where, element, 3000, ("mrkdwn", "plain_text"))


def _element_errors(
    where: str, block: dict[str, Any], most: int, check: Callable[[str, dict[str, Any]], list[str]]
) -> list[str]:
    elements = block.get("elements") or []
    errors = [] if 1 <= len(elements) <= most else [f"{where}: takes 1 to {most} elements"]
    for j, element in enumerate(elements):
        errors += check(f"{where}[{j}]", element)
    return errors


def block_errors(blocks: Any, surface: str = "message") -> list[str]:
    """What Slack would say is wrong with ``blocks`` in a message of kind ``surface``
    (``message``, ``ephemeral``, ``response_url``); empty when Slack would take them."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors = ["more than 50 blocks"] if len(blocks) > 50 else []
    markdown = 0
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"blocks[{i}] ({kind})"
        if kind not in _SURFACES[surface]:
            errors.append(f"{where}: not a block type a {surface} message takes")
            continue
        if len(str(block.get("block_id", ""))) > 255:
            errors.append(f"{where}: block_id longer than 255")
        if kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                errors.append(f"{where}: text must be a non-empty string")
            elif len(text) > 12_000:
                errors.append(f"{where}: more than 12000 characters")
            else:
                markdown += len(text)
        elif kind == "section":
            fields = block.get("fields") or []
            if "text" not in block and not fields:
                errors.append(f"{where}: needs text or fields")
            if "text" in block:
                errors += _text_errors(where, block["text"], 3000, ("mrkdwn", "plain_text"))
            if len(fields) > 10:
                errors.append(f"{where}: more than 10 fields")
            for j, item in enumerate(fields):
                errors += _text_errors(f"{where}.fields[{j}]", item, 2000, ("mrkdwn", "plain_text"))
        elif kind == "context":
            errors += _element_errors(where, block, 10, _context_element_errors)
        elif kind == "actions":
            errors += _element_errors(where, block, 25, _button_errors)
        elif kind == "header":
            errors += _text_errors(where, block.get("text"), 150, ("plain_text",))
    if markdown > 12_000:
        errors.append("markdown blocks hold more than 12000 characters in all")
    return errors


def _input_errors(where: str, block: dict[str, Any]) -> list[str]:
    errors = _text_errors(f"{where}.label", block.get("label"), 2000, ("plain_text",))
    if "hint" in block:
        errors += _text_errors(f"{where}.hint", block["hint"], 2000, ("plain_text",))
    element = block.get("element")
    if not isinstance(element, dict):
        return [*errors, f"{where}: needs an element"]
    if len(str(element.get("action_id", ""))) > 255:
        errors.append(f"{where}: action_id longer than 255")
    if "placeholder" in element:
        errors += _text_errors(f"{where}.placeholder", element["placeholder"], 150, ("plain_text",))
    kind = element.get("type")
    if kind == "plain_text_input":
        most = element.get("max_length", 3000)
        if not isinstance(most, int) or not 1 <= most <= 3000:
            errors.append(f"{where}: max_length must be 1 to 3000")
        if len(str(element.get("initial_value", ""))) > 3000:
            errors.append(f"{where}: initial_value longer than 3000")
    elif kind == "static_select":
        options = element.get("options") or []
        if not 1 <= len(options) <= 100:
            errors.append(f"{where}: takes 1 to 100 options")
        for j, option in enumerate(options):
            errors += _text_errors(f"{where}.options[{j}]", option.get("text"), 75, ("plain_text",))
            if len(str(option.get("value", ""))) > 150:
                errors.append(f"{where}.options[{j}]: value longer than 150")
    else:
        errors.append(f"{where}: an element these tests do not know ({kind})")
    return errors


def view_errors(view: Any) -> list[str]:
    """What Slack would say is wrong with a modal ``view`` (``views.open``); empty when Slack
    would take it."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["view: must be an object of type modal"]
    errors = _text_errors("view.title", view.get("title"), 24, ("plain_text",))
    for name in ("submit", "close"):
        if name in view:
            errors += _text_errors(f"view.{name}", view[name], 24, ("plain_text",))
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append("view: private_metadata longer than 3000")
    if len(str(view.get("callback_id", ""))) > 255:
        errors.append("view: callback_id longer than 255")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > 100:
        return [*errors, "view: blocks must be an array of at most 100"]
    inputs = [b for b in blocks if isinstance(b, dict) and b.get("type") == "input"]
    if inputs and "submit" not in view:
        errors.append("view: input blocks need a submit button")
    ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and b.get("block_id")]
    if len(ids) != len(set(ids)):
        errors.append("view: block_ids must be unique")
    others = [b for b in blocks if b not in inputs]
    errors += block_errors(others, "message")
    for i, block in enumerate(inputs):
        errors += _input_errors(f"view.blocks[{i}] (input)", block)
    return errors


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
        bot_token: str | None = None,
        workspace_url: str = "https://fake-team.slack.test/",
        latency: float = 0.0,
        limits: Mapping[str, Tier] | None = None,
    ) -> None:
        self.team = team
        self.bot_user = bot_user
        self.bot_id = bot_id
        #: the only token files are served to (None: any bot token, ``xoxb-…``)
        self.bot_token = bot_token
        self.workspace_url = workspace_url
        #: seconds every Web API call waits before answering (for benchmarks)
        self.latency = latency
        #: seconds a file download waits before answering
        self.download_latency = 0.0
        #: seconds after which Slack ends a stream by itself (about 5 minutes)
        self.stream_lifetime = 300.0
        #: rate limits enforced with 429 + Retry-After (e.g. :data:`SLACK_RATE_LIMITS`)
        self.limits = dict(limits or {})
        self.calls: list[Call] = []
        self.limited: list[Call] = []  # the calls answered 429
        self.invalid: list[tuple[str, list[str]]] = []  # refused blocks: (method, errors)
        self.statuses: list[dict[str, Any]] = []  # assistant.threads.setStatus
        self.titles: list[dict[str, Any]] = []  # assistant.threads.setTitle
        self.suggested: list[dict[str, Any]] = []  # assistant.threads.setSuggestedPrompts
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.uploads: dict[str, bytes] = {}  # the bytes of each file the bot uploaded, by id
        self.files: dict[str, SlackFile] = {}  # every file, the bot's and people's, by id
        self.downloads: list[tuple[str, str | None]] = []  # (file id, token) of each download
        self.views: list[dict[str, Any]] = []  # the modals opened, as Slack keeps them
        self._triggers: set[str] = set()  # trigger ids used already
        self.port = 0
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._failures: dict[str, list[str]] = {}
        self._limits: dict[str, list[int]] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, when
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
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_get("/files-pri/{file_id}/download/{name}", self._download)
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

    def add_file(
        self, name: str, data: bytes, *, user: str = "U1", size: int | None = None
    ) -> dict[str, Any]:
        """A file a person posts: kept here, served to the bot; its file object, as in a
        message event's ``files`` (``size``: what Slack says, if not the bytes' length)."""
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = SlackFile(
            id=file_id,
            name=name,
            data=data,
            title=name,
            user=user,
            length=len(data),
            uploaded=True,
            mimetype=_mimetype(name),
        )
        info = self.file_object(file_id)
        if size is not None:
            info["size"] = size
        return info

    def file_object(self, file_id: str) -> dict[str, Any]:
        """Slack's file object for a file here (what events, files.info and messages hold)."""
        file = self.files[file_id]
        base = f"http://127.0.0.1:{self.port}/files-pri/{self.team}-{file_id}"
        return {
            "id": file_id,
            "created": 1700000000,
            "name": file.name,
            "title": file.title or file.name,
            "mimetype": file.mimetype,
            "filetype": file.name.rsplit(".", 1)[-1].lower() if "." in file.name else "binary",
            "user": file.user,
            "size": len(file.data),
            "mode": "hosted",
            "is_external": False,
            "url_private": f"{base}/{file.name}",
            "url_private_download": f"{base}/download/{file.name}",
        }

    def submission(
        self, view: Mapping[str, Any], values: Mapping[str, str], *, user: str = "U1"
    ) -> dict[str, Any]:
        """The ``view_submission`` a person's submit of an opened modal sends, with the text
        typed into each plain-text input (by block id; the others left empty)."""
        state: dict[str, Any] = {}
        for block in view.get("blocks") or []:
            if block.get("type") != "input":
                continue
            element = block["element"]
            typed = values.get(block["block_id"])
            state[block["block_id"]] = {
                element["action_id"]: {"type": element["type"], "value": typed or None}
            }
        return {
            "type": "view_submission",
            "team": {"id": self.team, "domain": "fake-team"},
            "user": {"id": user, "team_id": self.team},
            "api_app_id": "A1",
            "trigger_id": f"trigger-submit-{next(self._ids)}",
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
        }

    def check_view_answer(self, view: Mapping[str, Any], answer: str) -> dict[str, Any]:
        """The app's answer to a view submission, as Slack reads it ({} closes the form);
        errors that do not name input blocks of ``view`` are refused (:attr:`invalid`)."""
        body: dict[str, Any] = json.loads(answer) if answer.strip() else {}
        if body.get("response_action") == "errors":
            inputs = {b.get("block_id") for b in view.get("blocks") or [] if b["type"] == "input"}
            errors = body.get("errors") or {}
            wrong = [name for name in errors if name not in inputs]
            if not errors or wrong:
                self.invalid.append(("view_submission", [f"errors name no input: {wrong}"]))
        return body

    def add_user_message(
        self, channel: str, user: str, text: str, thread_ts: str | None, ts: str | None = None
    ) -> str:
        """Record a person's message (for conversations.replies); returns its ts."""
        ts = ts or self._next_ts()
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
        call = Call(method, params, token, time.monotonic())
        self.calls.append(call)
        if self.latency:
            await asyncio.sleep(self.latency)
        retry_after = self._limits[method].pop(0) if self._limits.get(method) else None
        if retry_after is None and method in self.limits:
            retry_after = self._take(method, self.limits[method], str(params.get("channel", "")))
        if retry_after is not None:
            self.limited.append(call)
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
        surface = "ephemeral" if method == "chat.postEphemeral" else "message"
        if method != "chat.stopStream" and (
            errors := block_errors(params.get("blocks") or [], surface)
        ):
            return self._invalid(method, errors)
        result: dict[str, Any] = handler(params)
        return web.json_response({"ok": "error" not in result, **result})

    def _invalid(self, method: str, errors: list[str]) -> web.Response:
        self.invalid.append((method, errors))
        answer = {"ok": False, "error": "invalid_blocks", "errors": errors}
        return web.json_response({**answer, "response_metadata": {"messages": errors}})

    def _take(self, method: str, tier: Tier, channel: str) -> int | None:
        """A token of ``tier``'s bucket; None when there was one, else seconds to wait."""
        key = (tier.group or method, channel if tier.per_channel else "")
        now, rate = time.monotonic(), tier.per_minute / 60
        tokens, at = self._buckets.get(key, (tier.burst, now))
        tokens = min(tier.burst, tokens + (now - at) * rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))
        self._buckets[key] = (tokens - 1, now)
        return None

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
        if message.user != self.bot_user or self._still_streaming(message):
            return {"error": "cant_update_message"}
        message.text = p.get("text") or ""
        message.blocks = p.get("blocks") or []
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_startStream(self, p: Mapping[str, Any]) -> dict[str, Any]:
        channel, thread_ts = p["channel"], p.get("thread_ts")
        if not thread_ts:
            return {"error": "invalid_arguments"}
        if not channel.startswith("D"):  # required in channels
            if not p.get("recipient_user_id"):
                return {"error": "missing_recipient_user_id"}
            if not p.get("recipient_team_id"):
                return {"error": "missing_recipient_team_id"}
        text = p.get("markdown_text") or ""
        if len(text) > 12_000:
            return {"error": "msg_too_long"}
        ts = self._next_ts()
        self.messages[(channel, ts)] = Posted(
            channel=channel,
            ts=ts,
            text=text,
            blocks=[{"type": "markdown", "text": text}],
            thread_ts=thread_ts,
            streaming=True,
        )
        return {"channel": channel, "ts": ts}

    def _still_streaming(self, message: Posted) -> bool:
        if message.streaming and time.monotonic() - message.at > self.stream_lifetime:
            message.streaming = False  # ended by Slack
        return message.streaming

    def _streaming(self, p: Mapping[str, Any]) -> Posted | dict[str, Any]:
        message = self.messages.get((p["channel"], p["ts"]))
        if message is None:
            return {"error": "message_not_found"}
        if not self._still_streaming(message):
            return {"error": "message_not_in_streaming_state"}
        text = p.get("markdown_text") or ""
        if len(text) > 12_000 or len(message.text) + len(text) > 12_000:
            return {"error": "msg_too_long"}
        message.text += text
        message.blocks = [{"type": "markdown", "text": message.text}]
        return message

    def _m_chat_appendStream(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if not p.get("markdown_text"):
            return {"error": "no_text"}
        message = self._streaming(p)
        if isinstance(message, dict):
            return message
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, p: Mapping[str, Any]) -> dict[str, Any]:
        blocks = p.get("blocks") or []
        if errors := block_errors(blocks, "message"):
            self.invalid.append(("chat.stopStream", errors))
            return {"error": "invalid_blocks", "errors": errors}
        message = self._streaming(p)
        if isinstance(message, dict):
            return message
        message.streaming = False
        message.blocks += blocks  # rendered at the bottom of the streamed text
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _m_assistant_threads_setStatus(self, p: Mapping[str, Any]) -> dict[str, Any]:
        self.statuses.append(dict(p))
        return {}

    def _m_assistant_threads_setTitle(self, p: Mapping[str, Any]) -> dict[str, Any]:
        self.titles.append(dict(p))
        return {}

    def _m_assistant_threads_setSuggestedPrompts(self, p: Mapping[str, Any]) -> dict[str, Any]:
        prompts = p.get("prompts") or []
        if not 1 <= len(prompts) <= 4 or not all(
            x.get("title") and x.get("message") for x in prompts
        ):
            return {"error": "invalid_arguments"}
        self.suggested.append(dict(p))
        return {}

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
        trigger = p.get("trigger_id")
        if not trigger:
            return {"error": "invalid_trigger_id"}
        if trigger in self._triggers:
            return {"error": "exchanged_trigger_id"}
        self._triggers.add(str(trigger))
        if errors := view_errors(p.get("view")):
            self.invalid.append(("views.open", errors))
            return {"error": "invalid_arguments", "response_metadata": {"messages": errors}}
        view = {"id": f"V{next(self._ids)}", "team_id": self.team, **p["view"]}
        view.setdefault("private_metadata", "")
        self.views.append(view)
        return {"view": view}

    def _m_files_info(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if p.get("file") not in self.files:
            return {"error": "file_not_found"}
        return {"file": self.file_object(str(p["file"]))}

    def _m_files_getUploadURLExternal(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"error": "invalid_arguments"}
        if len(str(p.get("alt_txt") or "")) > 1000:
            self.invalid.append(("files.getUploadURLExternal", ["alt_txt longer than 1000"]))
            return {"error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = SlackFile(
            id=file_id,
            name=str(p["filename"]),
            length=int(p["length"]),
            alt_txt=p.get("alt_txt"),
            snippet_type=p.get("snippet_type"),
            mimetype=_mimetype(str(p["filename"])),
        )
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: Mapping[str, Any]) -> dict[str, Any]:
        items = p.get("files") or []
        if not 1 <= len(items) <= 10:
            self.invalid.append(("files.completeUploadExternal", ["takes 1 to 10 files"]))
            return {"error": "invalid_arguments"}
        for item in items:
            file = self.files.get(item.get("id", ""))
            if file is None or not file.uploaded:
                return {"error": "file_not_found"}
            if file.length != len(file.data):
                self.invalid.append(("files.completeUploadExternal", [f"{file.id}: length"]))
                return {"error": "invalid_arguments"}
        channel, thread_ts = p.get("channel_id"), p.get("thread_ts")
        for item in items:
            file = self.files[item["id"]]
            file.title = item.get("title") or file.name
            file.channel, file.thread_ts = channel, thread_ts
        files = [{**self.file_object(f["id"]), "title": f.get("title")} for f in items]
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
        self.files.pop(p["file"], None)
        return {}

    def _m_apps_connections_open(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = data
        if file_id in self.files:
            self.files[file_id].data, self.files[file_id].uploaded = data, True
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.Response:
        """A file's bytes, for the bot token in ``Authorization`` only (as Slack's file hosts
        serve ``url_private``); else Slack's sign-in page, which the app must not take."""
        team, _, file_id = request.match_info["file_id"].partition("-")
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.downloads.append((file_id, token))
        if self.download_latency:
            await asyncio.sleep(self.download_latency)
        file = self.files.get(file_id)
        if file is None or team != self.team or file.name != request.match_info["name"]:
            return web.Response(status=404, text="Not Found")
        wanted = (
            token == self.bot_token if self.bot_token else bool(token and token.startswith("xoxb-"))
        )
        if not wanted:
            self.invalid.append(("files.download", [f"{file_id}: not the bot token"]))
            return web.Response(text=_SIGN_IN, content_type="text/html")
        return web.Response(body=file.data, content_type=file.mimetype)

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        if errors := block_errors(body.get("blocks") or [], "response_url"):
            self.invalid.append(("response_url", errors))
            return web.Response(status=400, text="invalid_blocks")
        self.responses.append((request.match_info["name"], body))
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
