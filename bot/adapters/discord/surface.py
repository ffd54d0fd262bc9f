"""Where codethread's views appear on Discord, and who asked.

Two surfaces, one per way an answer reaches Discord:

- :class:`ThreadSurface`, a channel or thread: new messages are sent there (as a reply to the
  triggering message, without pinging its author); telling someone privately is an ephemeral
  followup when an interaction (a button) started the work, else a reply in the channel.
- :class:`ResponseSurface`, an interaction's own response: the first post fills the deferred
  response, later ones are followups; telling privately is an ephemeral followup, after a
  public "thinking…" that would otherwise dangle has been withdrawn.

How a view looks is :mod:`.render`'s (Components V2). What reaches Discord is never lost to
Discord's limits on delivery:

- An interaction's token lives 15 minutes. A public result that comes later (a run that waited
  behind others in the sandbox, behind a loading model), or that the token is refused for
  (401, 404), is posted in the channel (the session's thread) with the bot's own token
  instead, as a reply to the message whose button was pressed, and the "thinking…" post or
  status left behind is deleted.
- A result (not a status or a partial answer) refused by a rate limit longer than the client
  waits out itself (``discord.RateLimited``) is sent again once the limit has passed, for up to
  ``retry_window`` seconds.

A message is a :class:`discord.Message` whatever sent it, so editing and removing are the
same on both. A refusal by Discord becomes :class:`~bot.present.words.PlatformRefused`, so the
presenter words it; nothing here writes a word of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.adapters.discord.render import TEXT_LIMIT, message
from bot.present import Closed, PlatformRefused, Status, View, Writing
from bot.values import Caller
from storage import Session, SessionKey

__all__ = [
    "DM_WORKSPACE",
    "LIMIT",
    "MEMBER_PERMISSIONS",
    "REQUIRED_PERMISSIONS",
    "RETRY_WINDOW",
    "TOKEN_MARGIN",
    "ResponseSurface",
    "ThreadSurface",
    "caller_for",
    "permission_names",
    "refusals",
    "thread_key",
]

log = logging.getLogger("codethread.discord")

Interaction = discord.Interaction[discord.Client]
LIMIT = TEXT_LIMIT  # characters of markdown in one (Components V2) message
DM_WORKSPACE = "@me"  # the workspace of sessions started in direct messages
#: what the bot needs in a channel where /code is used (the invite URL asks for exactly these)
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    attach_files=True,
    read_message_history=True,
)
#: what the member who uses /code needs there themselves (the bot posts for them)
MEMBER_PERMISSIONS = discord.Permissions(create_public_threads=True, send_messages_in_threads=True)
#: an interaction token this close to the end of its 15 minutes is no longer used
TOKEN_MARGIN = datetime.timedelta(minutes=1)
RETRY_WINDOW = 120.0  # seconds a rate-limited result is tried again for
_PERMISSION_NAMES = {  # as Discord's settings name them
    "view_channel": "View Channel",
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "attach_files": "Attach Files",
    "read_message_history": "Read Message History",
}


def permission_names(permissions: discord.Permissions) -> str:
    """The required permissions among ``permissions``, by their names in Discord."""
    return ", ".join(name for attr, name in _PERMISSION_NAMES.items() if getattr(permissions, attr))


def caller_for(user: discord.abc.User, guild_id: int | None, channel: object) -> Caller:
    """Who asks and where; in a thread, the channel is the thread's parent."""
    where = channel.parent_id if isinstance(channel, discord.Thread) else getattr(channel, "id", 0)
    return Caller(
        platform="discord",
        workspace=str(guild_id) if guild_id else DM_WORKSPACE,
        user=str(user.id),
        channel=str(where),
    )


def thread_key(workspace: str, thread: discord.Thread) -> SessionKey:
    """The key of the session a thread holds: ``(discord, guild, parent channel, thread)``."""
    return SessionKey(
        platform="discord",
        workspace=workspace,
        channel=str(thread.parent_id),
        thread=str(thread.id),
    )


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turn what a failed Discord call raises into :class:`PlatformRefused`."""
    try:
        yield
    except discord.RateLimited as err:  # a wait longer than the client's max_ratelimit_timeout
        raise PlatformRefused("rate_limited", str(err), retry_after=err.retry_after) from err
    except discord.Forbidden as err:
        raise PlatformRefused("missing_permission", err.text or "Forbidden") from err
    except discord.NotFound as err:
        raise PlatformRefused("gone", err.text) from err
    except discord.HTTPException as err:
        raise PlatformRefused("error", f"{err.status} {err.text}".strip()) from err


def _token_refused(error: PlatformRefused) -> bool:
    """Whether an interaction's token was refused (it expired, or its message is gone)."""
    cause = error.__cause__
    return isinstance(cause, discord.HTTPException) and cause.status in (401, 404)


async def _privately(interaction: Interaction, view: View) -> None:
    with refusals():
        if interaction.response.is_done():
            await interaction.followup.send(**message(view, editing=False), ephemeral=True)
        else:
            await interaction.response.send_message(**message(view, editing=False), ephemeral=True)


@dataclass(eq=False)
class _Surface:
    """What both surfaces share: the pace, editing, removing, links and closing a thread."""

    client: discord.Client
    edit_interval: float
    limit = LIMIT
    retry_window = RETRY_WINDOW

    @staticmethod
    def escape(text: str) -> str:
        return discord.utils.escape_markdown(text)

    async def _delivered(
        self, send: Callable[[], Awaitable[discord.Message]], view: View
    ) -> discord.Message:
        """What ``send()`` sent; a result refused by a long rate limit is sent again after it,
        within ``retry_window`` seconds (a status or a partial answer is not worth the wait)."""
        loop = asyncio.get_running_loop()
        window = 0.0 if isinstance(view, Status | Writing) else self.retry_window
        deadline = loop.time() + window
        while True:
            try:
                with refusals():
                    return await send()
            except PlatformRefused as err:
                wait = err.retry_after
                if err.reason != "rate_limited" or wait is None or loop.time() + wait > deadline:
                    raise
                log.info("a result was rate-limited; sending it again in %.1f s", wait)
                await asyncio.sleep(wait)

    async def edit(self, handle: discord.Message, view: View) -> None:
        with refusals():
            await handle.edit(**message(view, editing=True))

    async def remove(self, handle: discord.Message) -> None:
        with refusals():
            await handle.delete()

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        """A thread's mention (``<#id>``); a DM session's request message, by its URL."""
        return {
            s.id: f"https://discord.com/channels/@me/{s.key.channel}/{s.key.thread}"
            if s.key.workspace == DM_WORKSPACE
            else f"<#{s.key.thread}>"
            for s in sessions
        }

    @staticmethod
    def mention(user: str) -> str:
        return f"<@{user}>"

    async def close(self, session: Session, notice: Closed) -> None:
        """Leave ``notice`` in the session's thread and archive it (a DM has no thread)."""
        if session.key.workspace == DM_WORKSPACE:
            return
        thread_id = int(session.key.thread)
        with refusals():
            thread = self.client.get_channel(thread_id)
            thread = thread or await self.client.fetch_channel(thread_id)
            if isinstance(thread, discord.Thread):
                await thread.send(**message(notice, editing=False))
                await thread.edit(archived=True)


@dataclass(eq=False)
class ThreadSurface(_Surface):
    """A channel or thread; ``reply_to`` is the message new posts answer, ``interaction`` the
    button press whose person is told things privately."""

    channel: discord.abc.Messageable
    reply_to: discord.Message | discord.PartialMessage | None = None
    interaction: Interaction | None = None

    async def post(self, view: View) -> discord.Message:
        extra: dict[str, Any] = {}
        if self.reply_to is not None:
            extra["reference"] = self.reply_to.to_reference(fail_if_not_exists=False)
            extra["mention_author"] = False
        return await self._delivered(
            lambda: self.channel.send(**message(view, editing=False), **extra), view
        )

    async def tell(self, view: View) -> None:
        if self.interaction is not None:
            await _privately(self.interaction, view)
        else:  # a message in a thread: its answer, a refusal included, goes there
            await self.post(view)


@dataclass(eq=False)
class ResponseSurface(_Surface):
    """An interaction's response: :meth:`acknowledge` defers it (Discord's 3-second window),
    the first post fills it; past the token's life a public post goes to the channel."""

    interaction: Interaction
    _thinking: bool = field(default=False, init=False)  # a public "thinking…" is showing
    _filled: bool = field(default=False, init=False)  # the deferred response holds a post
    _private: bool = field(default=False, init=False)
    _expired: bool = field(default=False, init=False)  # the token was refused
    _original: int | None = field(default=None, init=False)  # the public response's message

    @classmethod
    def taken_over(
        cls,
        client: discord.Client,
        edit_interval: float,
        interaction: Interaction,
        *,
        private: bool,
        original: int | None,
        filled: bool,
    ) -> ResponseSurface:
        """The response of an interaction another process (or attempt) acknowledged, as
        :meth:`acknowledge` left it: ``private``ly or with a public "thinking…" post
        (``original``, when known), and already ``filled`` when an earlier attempt posted
        in it (later posts are followups)."""
        surface = cls(client, edit_interval, interaction)
        surface._thinking, surface._private = not private, private
        surface._original, surface._filled = original, filled
        return surface

    @property
    def original(self) -> int | None:
        """The id of the public "thinking…" post :meth:`acknowledge` made (None: none)."""
        return self._original

    def _token_alive(self) -> bool:
        deadline = self.interaction.expires_at - TOKEN_MARGIN
        return not self._expired and discord.utils.utcnow() < deadline

    def _channel(self) -> discord.PartialMessageable:
        interaction = self.interaction
        return self.client.get_partial_messageable(
            interaction.channel_id or 0, guild_id=interaction.guild_id
        )

    async def acknowledge(self, *, private: bool = False) -> None:
        with refusals():
            answer = await self.interaction.response.defer(ephemeral=private, thinking=True)
        self._thinking, self._private = not private, private
        if answer is not None and not private:
            self._original = answer.message_id

    async def post(self, view: View) -> discord.Message:
        if self._token_alive():
            try:
                return await self._delivered(lambda: self._by_token(view), view)
            except PlatformRefused as err:
                if self._private or not _token_refused(err):
                    raise
                self._expired = True
                log.info("an interaction token was refused (%s); posting in the channel", err)
        if self._private:  # an ephemeral answer has no other way
            raise PlatformRefused("gone", "the interaction expired")
        instead = ThreadSurface(
            self.client, self.edit_interval, self._channel(), reply_to=self.interaction.message
        )
        posted = await instead.post(view)
        if self._original is not None:  # the "thinking…" post, or what it became
            with contextlib.suppress(PlatformRefused):
                await self._remove_by_id(self._original)
            self._original = None
        return posted

    async def _by_token(self, view: View) -> discord.Message:
        if not self._filled and self.interaction.response.is_done():
            posted = await self.interaction.edit_original_response(**message(view, editing=True))
            self._filled = True
            return posted
        return await self.interaction.followup.send(**message(view, editing=False), wait=True)

    async def edit(self, handle: discord.Message, view: View) -> None:
        by_token = isinstance(handle, discord.InteractionMessage | discord.WebhookMessage)
        if by_token and not self._token_alive():  # the presenter posts the result anew
            raise PlatformRefused("gone", "the interaction expired")
        try:
            await super().edit(handle, view)
        except PlatformRefused as err:
            self._expired = self._expired or (by_token and _token_refused(err))
            raise

    async def remove(self, handle: discord.Message) -> None:
        if handle.id == self._original:
            self._original = None
        by_token = isinstance(handle, discord.InteractionMessage | discord.WebhookMessage)
        if by_token and not self._token_alive():
            await self._remove_by_id(handle.id)
        else:
            await super().remove(handle)

    async def _remove_by_id(self, message_id: int) -> None:
        """Delete a message with the bot's own token (the interaction's may have expired)."""
        with refusals():
            await self._channel().get_partial_message(message_id).delete()

    async def tell(self, view: View) -> None:
        if self._thinking and not self._filled:  # withdraw the public "thinking…" first
            self._thinking = False
            with contextlib.suppress(PlatformRefused), refusals():
                if self._token_alive():
                    await self.interaction.delete_original_response()
                elif self._original is not None:
                    await self._remove_by_id(self._original)
            self._original = None
        await _privately(self.interaction, view)
