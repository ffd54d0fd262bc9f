"""Slack's surface: views as Block Kit messages in a thread, ephemeral answers for one person.

Layout only, no words: a view's markdown goes in Slack's ``markdown`` block (standard markdown,
so a fenced block keeps its language tag and is highlighted; mrkdwn sections would show the tag
as a line of code), a status line in a small grey ``context`` block, and the view's actions as
buttons whose ``value`` is the action's compact code (``run:12:3``), so that a button still works
after a restart. A view's file goes to the thread next to its message (``files_upload_v2``, with
Slack's file type for the language). What one person should see alone goes through the slash
command's ``response_url`` when there is one, else ``chat.postEphemeral``. Slack's refusals
become :class:`~bot.present.words.PlatformRefused` with Slack's error code as the reason, so the
presenter words them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.present import words
from bot.present.views import Attachment, Closed, RequestPost, Status, View
from bot.values import Action
from storage import Session

__all__ = [
    "ACTION_PREFIX",
    "LIMIT",
    "Message",
    "SlackBot",
    "SlackSurface",
    "blocks",
    "escape",
    "refusals",
]

#: characters of markdown in one message (Slack advises 4,000; a markdown block takes 12,000)
LIMIT = 3900
ACTION_PREFIX = "codethread_"  # a button's action_id is this and the action's kind
_CONTEXT_LIMIT = 3000  # a text object takes 3,000 characters
_SECTION_LIMIT = 3000
_SNIPPET_TYPES = {"bash": "shell"}  # Slack's file types, where they differ from our names
_REASONS = {"ratelimited": "rate_limited", "message_not_found": "gone"}


def escape(text: str) -> str:
    """``text`` safe inside Slack's markup (its three control characters as entities)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turn a Web API error inside the block into :class:`PlatformRefused`."""
    try:
        yield
    except SlackApiError as err:
        code = str(err.response.get("error") or "error")
        wait = err.response.headers.get("Retry-After") if code == "ratelimited" else None
        retry_after = float(wait) if wait and str(wait).isdigit() else None
        raise words.PlatformRefused(
            _REASONS.get(code, code), code, retry_after=retry_after
        ) from None


# -- Block Kit ---------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _button(action: Action) -> dict[str, Any]:
    look = words.look(action)
    button: dict[str, Any] = {
        "type": "button",
        "action_id": ACTION_PREFIX + action.kind,
        "text": _plain(f"{look.emoji} {look.label}"),
        "value": action.encode(),
    }
    if look.style != "default":
        button["style"] = look.style
    if look.confirm is not None:
        title, text, confirm, deny = look.confirm
        button["confirm"] = {
            "title": _plain(title),
            "text": _plain(text),
            "confirm": _plain(confirm),
            "deny": _plain(deny),
            **({"style": look.style} if look.style != "default" else {}),
        }
    return button


def blocks(view: View) -> list[dict[str, Any]]:
    """A view as Block Kit: its body, then its buttons."""
    body: dict[str, Any]
    if isinstance(view, Status):
        body = {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": view.text[:_CONTEXT_LIMIT]}],
        }
    elif isinstance(view, RequestPost | Closed):
        # mrkdwn, where Slack renders <@U…> mentions (the words use markdown's **bold**)
        text = view.text.replace("**", "*")[:_SECTION_LIMIT]
        body = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    else:
        body = {"type": "markdown", "text": view.text or " "}
    if not view.actions:
        return [body]
    return [body, {"type": "actions", "elements": [_button(a) for a in view.actions]}]


# -- the surface -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A posted message (the handle the presenter edits or removes it by)."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackBot:
    """Who the bot is in a workspace (from bolt's authorization of the request)."""

    user: str | None = None
    bot_id: str | None = None
    url: str | None = None  # the workspace's URL, for links to threads

    def wrote(self, message: Mapping[str, Any]) -> bool:
        return bool(
            (self.user and message.get("user") == self.user)
            or (self.bot_id and message.get("bot_id") == self.bot_id)
        )


@dataclass(slots=True, kw_only=True)
class SlackSurface:
    """A channel (and a thread in it, once there is one) and the person who acted there."""

    client: AsyncWebClient
    channel: str
    user: str
    thread: str | None = None
    respond: AsyncRespond | None = None  # a slash command's response_url
    bot: SlackBot = field(default_factory=SlackBot)
    limit: int = LIMIT
    edit_interval: float = 1.0

    def in_thread(self, ts: str) -> SlackSurface:
        """The same place and person, posting in the thread of message ``ts``."""
        return dataclasses.replace(self, thread=ts)

    def escape(self, text: str) -> str:
        return escape(text)

    def mention(self, user: str) -> str:
        return f"<@{user}>"

    async def post(self, view: View) -> Message:
        with refusals():
            posted = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread,
                text=view.summary,
                blocks=blocks(view),
                unfurl_links=False,
            )
        message = Message(channel=str(posted["channel"]), ts=str(posted["ts"]))
        await self._attach(message, view.file)
        return message

    async def edit(self, handle: Message, view: View) -> None:
        with refusals():
            await self.client.chat_update(
                channel=handle.channel, ts=handle.ts, text=view.summary, blocks=blocks(view)
            )
        await self._attach(handle, view.file)

    async def _attach(self, message: Message, file: Attachment | None) -> None:
        if file is None:
            return
        with refusals():
            await self.client.files_upload_v2(
                channel=message.channel,
                thread_ts=self.thread,
                content=file.content,
                filename=file.filename,
                title=file.title,
                snippet_type=_SNIPPET_TYPES.get(file.language, file.language) or None,
            )

    async def remove(self, handle: Message) -> None:
        with refusals():
            await self.client.chat_delete(channel=handle.channel, ts=handle.ts)

    async def tell(self, view: View) -> None:
        """Ephemeral: a view's file stays out (Slack has no private files; the thread has it)."""
        text, shown = view.summary, blocks(view)
        if self.respond is not None:
            await self.respond(
                text=text, blocks=shown, response_type="ephemeral", replace_original=False
            )
            return
        with refusals():
            await self.client.chat_postEphemeral(
                channel=self.channel, user=self.user, text=text, blocks=shown, thread_ts=self.thread
            )

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        """Links to the sessions' threads: built from the workspace URL, else asked of Slack."""
        if self.bot.url:
            base = self.bot.url.rstrip("/")
            return {
                s.id: f"{base}/archives/{s.key.channel}/p{s.key.thread.replace('.', '')}"
                for s in sessions
            }

        async def one(session: Session) -> tuple[int, str | None]:
            try:
                found = await self.client.chat_getPermalink(
                    channel=session.key.channel, message_ts=session.key.thread
                )
            except SlackApiError:
                return session.id, None
            return session.id, str(found["permalink"])

        found = await asyncio.gather(*(one(s) for s in sessions))
        return {sid: link for sid, link in found if link}

    async def close(self, session: Session, notice: Closed) -> None:
        """Remove the bot's messages (and their files) from the thread; the parent becomes
        ``notice``."""
        channel, thread = session.key.channel, session.key.thread
        with refusals():
            ours = [m async for m in self._replies(channel, thread) if m["ts"] != thread]
            for message in ours:
                for file in message.get("files") or []:
                    with contextlib.suppress(SlackApiError):
                        await self.client.files_delete(file=file["id"])
                with contextlib.suppress(SlackApiError):
                    await self.client.chat_delete(channel=channel, ts=message["ts"])
            await self.client.chat_update(
                channel=channel, ts=thread, text=notice.summary, blocks=blocks(notice)
            )

    async def _replies(self, channel: str, thread: str) -> AsyncIterator[dict[str, Any]]:
        """The bot's messages in a thread, page by page."""
        cursor: str | None = None
        while True:
            page = await self.client.conversations_replies(
                channel=channel, ts=thread, cursor=cursor, limit=200
            )
            for message in page.get("messages") or []:
                if self.bot.wrote(message):
                    yield message
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return
