"""Slack's surface: views as Block Kit messages in a thread, ephemeral answers for one person.

Layout only, no words. In channel messages a view's markdown goes in Slack's ``markdown``
block (standard markdown, up to 12,000 characters), a status line in a small grey ``context``
block, and the view's actions as buttons whose ``value`` is the action's compact code
(``run:12:3``), so that a button still works after a restart. What one person should see alone
(the slash command's ``response_url`` when there is one, else ``chat.postEphemeral``) takes no
``markdown`` block: there the markdown becomes ``section`` mrkdwn (:func:`mrkdwn`: bold, links,
code blocks without their language tag), cut into sections of Slack's 3,000 characters. A
view's files (a long snippet's, and the files a run made) go to the thread right after its
message, in one ``files_upload_v2`` call (a message cannot carry files itself, nor gain them by
an edit); Slack shows pictures among them inline there.

An answer streams natively (``chat.startStream``/``appendStream``/``stopStream``, see
:class:`SlackStream`); a workspace that refuses the methods (an older one, a missing scope) is
remembered and gets the edited message instead. In an assistant thread (the app's own pane,
direct messages) waiting, loading and writing go to ``assistant.threads.setStatus``. Every
call is paced by the adapter's :class:`~bot.adapters.slack.pace.Pace`, which counts Slack's 429s
(the Web API client's through :class:`~bot.adapters.slack.pace.RateLimitRetries`, a response
URL's here). Slack's refusals become
:class:`~bot.present.words.PlatformRefused` with Slack's error code as the reason, so the
presenter words them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.pace import Pace
from bot.codeblocks import close_open_fence
from bot.present import words
from bot.present.live import Throttle
from bot.present.views import Attachment, Closed, RequestPost, Status, View, Writing
from bot.values import Action
from storage import Session

__all__ = [
    "ACTION_PREFIX",
    "LIMIT",
    "Message",
    "SlackBot",
    "SlackStream",
    "SlackSurface",
    "blocks",
    "escape",
    "mrkdwn",
    "private_blocks",
    "refusals",
]

log = logging.getLogger("codethread.slack")

#: characters of markdown in one message (Slack advises 4,000; a markdown block takes 12,000)
LIMIT = 3900
ACTION_PREFIX = "codethread_"  # a button's action_id is this and the action's kind
_TEXT_LIMIT = 3000  # a section's or a context element's text
_FILES_AT_ONCE = 10  # files in one files.completeUploadExternal (Slack fails past about 14)
_ALT_TEXT = 1000  # an image's alt text
_SNIPPET_TYPES = {"bash": "shell"}  # Slack's file types, where they differ from our names
_REASONS = {"ratelimited": "rate_limited", "message_not_found": "gone"}
_ENDED = frozenset({"message_not_in_streaming_state", "message_not_found"})  # a stream's end
#: chat.startStream refused for the whole workspace: edit messages there instead
_NO_STREAMING = frozenset(
    {"unknown_method", "method_not_supported", "missing_scope", "not_allowed_token_type",
     "method_deprecated", "deprecated_endpoint", "feature_not_enabled"}
)  # fmt: skip


def escape(text: str) -> str:
    """``text`` safe inside Slack's markup (its three control characters as entities)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(error: SlackApiError) -> str:
    return str(error.response.get("error") or "error")


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turn a Web API error inside the block into :class:`PlatformRefused`."""
    try:
        yield
    except SlackApiError as err:
        code = _code(err)
        wait = err.response.headers.get("Retry-After") if code == "ratelimited" else None
        retry_after = float(wait) if wait and str(wait).isdigit() else None
        raise words.PlatformRefused(
            _REASONS.get(code, code), code, retry_after=retry_after
        ) from None


# -- markdown as mrkdwn ------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SPAN = re.compile(r"(`+)(.+?)\1")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|mailto):[^)\s]+)\)")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_BARE_LT = re.compile(r"<(?![@#!]|(?:https?|mailto):)")


def _prose(text: str) -> str:
    """Markdown outside code as mrkdwn; what Slack would read as markup is escaped."""
    text = _BARE_LT.sub("&lt;", _BARE_AMP.sub("&amp;", text))
    text = _BOLD.sub(r"*\1*", text)
    return _LINK.sub(lambda m: f"<{m[2]}|{m[1].replace('|', '¦')}>", text)


def _inline(line: str) -> str:
    parts, at = [], 0
    for span in _SPAN.finditer(line):
        parts += [_prose(line[at : span.start()]), f"`{escape(span[2])}`"]
        at = span.end()
    return "".join([*parts, _prose(line[at:])])


def mrkdwn(markdown: str) -> str:
    """The view's markdown as Slack's mrkdwn: ``**bold**`` as ``*bold*``, ``[t](u)`` as
    ``<u|t>``, fenced code as a plain ``` block (mrkdwn would show a language tag as code;
    a run of backticks inside is broken up, since mrkdwn ends a block at the first one)."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        marker = _FENCE.match(line)
        if fence is None and marker:
            fence = marker[1]
            out.append("```")
        elif fence is not None and marker and marker[1][0] == fence[0] and not marker[2].strip():
            if len(marker[1]) >= len(fence):
                fence = None
                out.append("```")
            else:
                out.append(escape(line).replace("``", "`\u200b`"))
        elif fence is not None:
            out.append(escape(line).replace("``", "`\u200b`"))
        else:
            out.append(_inline(line))
    if fence is not None:
        out.append("```")
    return "\n".join(out)


def _sections(text: str) -> list[dict[str, Any]]:
    """mrkdwn in sections of at most 3,000 characters, each with its code blocks closed."""
    room = _TEXT_LIMIT - 8
    chunks: list[str] = []
    current, code = "", False
    for whole in text.split("\n"):
        for line in [whole[i : i + room - 8] for i in range(0, len(whole), room - 8)] or [""]:
            closing = code and line == "```"
            if current and len(current) + len(line) + 1 > room and not closing:
                chunks.append(current + ("\n```" if code else ""))
                current = "```\n" + line if code else line
            else:
                current = f"{current}\n{line}" if current else line
            code = code != (line == "```")
    chunks.append(current)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks if c.strip()
    ] or [{"type": "section", "text": {"type": "mrkdwn", "text": " "}}]


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


def _buttons(view: View) -> list[dict[str, Any]]:
    if not view.actions:
        return []
    return [{"type": "actions", "elements": [_button(a) for a in view.actions]}]


def _status_line(view: View) -> dict[str, Any]:
    text = mrkdwn(view.text)[:_TEXT_LIMIT]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def blocks(view: View) -> list[dict[str, Any]]:
    """A view as a channel message: its body, then its buttons."""
    body: list[dict[str, Any]]
    if isinstance(view, Status):
        body = [_status_line(view)]
    elif isinstance(view, RequestPost | Closed):  # mrkdwn renders <@U…> mentions
        body = _sections(mrkdwn(view.text))
    else:
        body = [{"type": "markdown", "text": view.text or " "}]
    return body + _buttons(view)


def private_blocks(view: View) -> list[dict[str, Any]]:
    """A view for one person (ephemeral, response_url): no markdown block there."""
    body = [_status_line(view)] if isinstance(view, Status) else _sections(mrkdwn(view.text))
    return body + _buttons(view)


def _upload(file: Attachment) -> dict[str, Any]:
    """One of ``files_upload_v2``'s ``file_uploads``."""
    item: dict[str, Any] = {"filename": file.filename, "content": file.payload}
    item["title"] = file.title
    if file.image:
        item["alt_txt"] = file.title[:_ALT_TEXT]
    elif snippet := _SNIPPET_TYPES.get(file.language, file.language):
        item["snippet_type"] = snippet
    return item


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
    """A channel (and a thread in it, once there is one) and the person who acted there.

    ``assistant``: the thread is an assistant thread or a direct message (status lines and
    titles are shown there)."""

    client: AsyncWebClient
    team: str
    channel: str
    user: str
    thread: str | None = None
    respond: AsyncRespond | None = None  # a slash command's response_url
    bot: SlackBot = field(default_factory=SlackBot)
    pace: Pace = field(default_factory=Pace)
    assistant: bool = False
    limit: int = LIMIT
    edit_interval: float = 1.0
    _status_on: bool = field(default=False, init=False)

    def in_thread(self, ts: str) -> SlackSurface:
        """The same place and person, posting in the thread of message ``ts``."""
        return dataclasses.replace(self, thread=ts)

    def escape(self, text: str) -> str:
        return escape(text)

    def mention(self, user: str) -> str:
        return f"<@{user}>"

    async def post(self, view: View) -> Message:
        await self.pace.bucket("message", self.team, self.channel).take()
        with refusals():
            posted = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread,
                text=view.summary,
                blocks=blocks(view),
                unfurl_links=False,
            )
        self._status_on = False  # Slack clears the status when the app answers
        message = Message(channel=str(posted["channel"]), ts=str(posted["ts"]))
        await self.attach(message, view.files)
        return message

    async def edit(self, handle: Message, view: View, *, final: bool = False) -> None:
        """Replace a message; a streaming edit (not ``final``) the workspace's budget has no
        room for is dropped (the next one, or the result, shows newer text)."""
        bucket = self.pace.bucket("chat.update", self.team)
        if isinstance(view, Writing | Status) and not final:
            if not bucket.spare(keep=bucket.burst / 2):
                return
        else:
            await bucket.take()
        with refusals():
            await self.client.chat_update(
                channel=handle.channel, ts=handle.ts, text=view.summary, blocks=blocks(view)
            )
        await self.attach(handle, view.files)

    async def attach(self, message: Message, files: Sequence[Attachment]) -> None:
        """``files`` into the thread, right after ``message``: text with the language's
        highlighting, pictures inline (with their title as alt text)."""
        for at in range(0, len(files), _FILES_AT_ONCE):
            with refusals():
                await self.client.files_upload_v2(
                    channel=message.channel,
                    thread_ts=self.thread,
                    file_uploads=[_upload(f) for f in files[at : at + _FILES_AT_ONCE]],
                )

    async def remove(self, handle: Message) -> None:
        await self.pace.bucket("chat.delete", self.team).take()
        with refusals():
            await self.client.chat_delete(channel=handle.channel, ts=handle.ts)

    async def tell(self, view: View) -> None:
        """Ephemeral: a view's files stay out (Slack has no private files; the thread has a
        long snippet's, and a private run's files are only named)."""
        text, shown = view.summary, private_blocks(view)
        if self.respond is not None:
            answer = await self.respond(
                text=text, blocks=shown, response_type="ephemeral", replace_original=False
            )
            if answer.status_code == 429:  # not through the Web API client: counted here
                self.pace.throttled()
            if answer.status_code != 200:
                raise words.PlatformRefused(str(answer.body or "error"), "response_url")
            return
        with refusals():
            await self.client.chat_postEphemeral(
                channel=self.channel, user=self.user, text=text, blocks=shown, thread_ts=self.thread
            )

    # -- streaming and the assistant pane ---------------------------------------------------

    async def stream(self) -> SlackStream | None:
        """A natively streamed message in this thread (None: edit one message instead)."""
        if self.thread is None or self.team in self.pace.unstreamed:
            return None
        await self.pace.bucket("message", self.team, self.channel).take()
        try:
            started = await self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread,
                recipient_user_id=self.user,
                recipient_team_id=self.team,
            )
        except SlackApiError as err:
            if _code(err) in _NO_STREAMING:
                self.pace.unstreamed.add(self.team)
                log.warning("workspace %s does not stream (%s): editing", self.team, _code(err))
            else:
                log.info("could not start a streamed message: %s", _code(err))
            return None
        self._status_on = False
        return SlackStream(self, Message(channel=str(started["channel"]), ts=str(started["ts"])))

    async def status(self, text: str) -> bool:
        """The assistant thread's status ("" clears it); False outside assistant threads."""
        if not self.assistant or self.thread is None:
            return False
        if text and not self.pace.bucket("assistant.threads.setStatus", self.team).spare():
            return True  # a nicety the budget has no room for
        if text or self._status_on:
            with refusals():
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel,
                    thread_ts=self.thread,
                    status=text.replace("**", "").replace("`", ""),
                )
            self._status_on = bool(text)
        return True

    async def title(self, text: str) -> None:
        """The assistant thread's title (best effort; only assistant threads have one)."""
        if self.assistant and self.thread is not None:
            with contextlib.suppress(SlackApiError):
                await self.client.assistant_threads_setTitle(
                    channel_id=self.channel, thread_ts=self.thread, title=text[:255]
                )

    async def suggest(self, title: str, prompts: Sequence[tuple[str, str]]) -> None:
        """Prompts to start from, offered in a new assistant thread (best effort)."""
        if self.thread is not None:
            with contextlib.suppress(SlackApiError):
                await self.client.assistant_threads_setSuggestedPrompts(
                    channel_id=self.channel,
                    thread_ts=self.thread,
                    title=title,
                    prompts=[{"title": t, "message": m} for t, m in prompts[:4]],
                )

    # -- links and tidying ------------------------------------------------------------------

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
        """Remove the bot's messages (and their files) from the thread and leave ``notice``:
        as the parent where the bot posted it, else (a direct message) in the thread."""
        channel, thread = session.key.channel, session.key.thread
        with refusals():
            mine = [m async for m in self._replies(channel, thread)]
            for message in (m for m in mine if m["ts"] != thread):
                for file in message.get("files") or []:
                    with contextlib.suppress(SlackApiError):
                        await self.client.files_delete(file=file["id"])
                await self.pace.bucket("chat.delete", self.team).take()
                with contextlib.suppress(SlackApiError):
                    await self.client.chat_delete(channel=channel, ts=message["ts"])
            if any(m["ts"] == thread for m in mine):
                await self.client.chat_update(
                    channel=channel, ts=thread, text=notice.summary, blocks=blocks(notice)
                )
            else:
                await self.client.chat_postMessage(
                    channel=channel, thread_ts=thread, text=notice.summary, blocks=blocks(notice)
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


class SlackStream:
    """One answer streamed into a thread with Slack's ``chat.*Stream`` methods.

    The answer's pieces are appended at most once per ``edit_interval`` and only while the
    workspace's ``chat.appendStream`` budget has room (else they wait for the next append or
    the stop), up to the surface's limit. :meth:`stop` goes out at once: the rest of the text
    (an open fence closed) and the result's buttons. When the result reads otherwise than the
    streamed text (a version's card, a long snippet's preview and file, a failure), one
    ``chat.update`` replaces the text with it; the buttons were live before that.
    """

    def __init__(self, surface: SlackSurface, message: Message) -> None:
        self.surface = surface
        self.client = surface.client
        self.message = message
        self._shown = ""  # what Slack shows
        self._held = ""  # not sent yet
        self._open = True  # False once Slack ended the stream (after ~5 minutes)
        self._stalled = False  # an append was refused: the rest goes with the stop
        self._throttle = Throttle(surface.edit_interval)
        self._throttle.restart()
        self._pump: asyncio.Task[None] | None = None
        self._sending = False

    def append(self, delta: str) -> None:
        room = self.surface.limit - len(self._shown) - len(self._held)
        if not self._open or room <= 0:
            return
        self._held += delta[:room]
        if not self._stalled and (self._pump is None or self._pump.done()):
            self._pump = asyncio.create_task(self._appends())

    async def _appends(self) -> None:
        bucket = self.surface.pace.bucket("chat.appendStream", self.surface.team)
        while self._held and self._open and not self._stalled:
            await asyncio.sleep(self._throttle.remaining())
            self._throttle.restart()
            if not bucket.spare():
                continue  # held until the next turn of the pace, or the stop
            chunk, self._held = self._held, ""
            self._sending = True
            try:
                await self.client.chat_appendStream(
                    channel=self.message.channel, ts=self.message.ts, markdown_text=chunk
                )
                self._shown += chunk
            except SlackApiError as err:
                log.info("could not append to a streamed message: %s", _code(err))
                if _code(err) in _ENDED:  # the stop's update shows the result
                    self._open = False
                else:
                    self._held, self._stalled = chunk + self._held, True
            finally:
                self._sending = False

    async def _quiet(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            if not self._sending:
                pump.cancel()
            await asyncio.wait([pump])

    async def stop(self, view: View) -> None:
        await self._quiet()
        rest, self._held = self._held, ""
        text = self._shown + rest
        closed = close_open_fence(text)
        if closed != text:  # an open fence is closed
            rest += ("" if text.endswith("\n") else "\n") + closed.rsplit("\n", 1)[1]
        ended = False
        if self._open:
            self._open = False
            try:
                await self.client.chat_stopStream(
                    channel=self.message.channel,
                    ts=self.message.ts,
                    markdown_text=rest or None,
                    blocks=_buttons(view) or None,
                )
                self._shown, ended = self._shown + rest, True
            except SlackApiError as err:  # it ended by itself (after ~5 minutes): update it
                log.info("could not stop a streamed message: %s", _code(err))
        if ended and self._shown.strip() == view.text.strip():
            await self.surface.attach(self.message, view.files)
        else:
            await self.surface.edit(self.message, view, final=True)
