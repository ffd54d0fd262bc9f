"""Where codethread's views appear on Discord, and who asked.

Two surfaces, one per way an answer reaches Discord:

- :class:`ThreadSurface`, a channel or thread: new messages are sent there (as a reply to the
  triggering message, without pinging its author); telling someone privately is an ephemeral
  followup when an interaction (a button) started the work, else a reply in the channel.
- :class:`ResponseSurface`, an interaction's own response: the first post fills the deferred
  response, later ones are followups; telling privately is an ephemeral followup, after a
  public "thinking…" that would otherwise dangle has been withdrawn.

A message is a :class:`discord.Message` whatever sent it, so editing and removing are the
same on both. A refusal by Discord becomes :class:`~bot.present.words.PlatformRefused`, so the
presenter words it; nothing here writes a word of its own.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.adapters.discord.buttons import buttons_for
from bot.present import Closed, PlatformRefused, View
from bot.values import Caller
from storage import Session, SessionKey

__all__ = [
    "DM_WORKSPACE",
    "LIMIT",
    "REQUIRED_PERMISSIONS",
    "ResponseSurface",
    "ThreadSurface",
    "caller_for",
    "permission_names",
    "refusals",
    "thread_key",
]

Interaction = discord.Interaction[discord.Client]
LIMIT = 2000  # characters in one Discord message
DM_WORKSPACE = "@me"  # the workspace of sessions started in direct messages
#: what the bot needs in a channel where /code is used (the invite URL asks for exactly these)
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    attach_files=True,
    read_message_history=True,
)
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


def _message(view: View, *, editing: bool) -> dict[str, Any]:
    """``view`` as keyword arguments of a send (or, ``editing``, of an edit, which also takes
    away the file and buttons of what it replaces)."""
    fields: dict[str, Any] = {"content": view.text}
    file = None
    if view.file is not None:
        data = io.BytesIO(view.file.content.encode())
        file = discord.File(data, filename=view.file.filename, description=view.file.title)
    buttons = buttons_for(view.actions)
    if editing:
        fields.update(attachments=[file] if file else [], view=buttons)
    else:
        if file is not None:
            fields["file"] = file
        if buttons is not None:
            fields["view"] = buttons
    return fields


async def _privately(interaction: Interaction, view: View) -> None:
    with refusals():
        if interaction.response.is_done():
            await interaction.followup.send(**_message(view, editing=False), ephemeral=True)
        else:
            await interaction.response.send_message(**_message(view, editing=False), ephemeral=True)


@dataclass(eq=False)
class _Surface:
    """What both surfaces share: the pace, editing, removing, links and closing a thread."""

    client: discord.Client
    edit_interval: float
    limit = LIMIT

    @staticmethod
    def escape(text: str) -> str:
        return discord.utils.escape_markdown(text)

    async def edit(self, handle: discord.Message, view: View) -> None:
        with refusals():
            await handle.edit(**_message(view, editing=True))

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
                await thread.send(notice.text)
                await thread.edit(archived=True)


@dataclass(eq=False)
class ThreadSurface(_Surface):
    """A channel or thread; ``reply_to`` is the message new posts answer, ``interaction`` the
    button press whose person is told things privately."""

    channel: discord.abc.Messageable
    reply_to: discord.Message | None = None
    interaction: Interaction | None = None

    async def post(self, view: View) -> discord.Message:
        extra: dict[str, Any] = {}
        if self.reply_to is not None:
            extra["reference"] = self.reply_to.to_reference(fail_if_not_exists=False)
            extra["mention_author"] = False
        with refusals():
            return await self.channel.send(**_message(view, editing=False), **extra)

    async def tell(self, view: View) -> None:
        if self.interaction is not None:
            await _privately(self.interaction, view)
        else:  # a message in a thread: its answer, a refusal included, goes there
            await self.post(view)


@dataclass(eq=False)
class ResponseSurface(_Surface):
    """An interaction's response: :meth:`acknowledge` defers it (Discord's 3-second window),
    the first post fills it."""

    interaction: Interaction
    _thinking: bool = field(default=False, init=False)  # a public "thinking…" is showing
    _filled: bool = field(default=False, init=False)  # the deferred response holds a post

    async def acknowledge(self, *, private: bool = False) -> None:
        with refusals():
            await self.interaction.response.defer(ephemeral=private, thinking=True)
        self._thinking = not private

    async def post(self, view: View) -> discord.Message:
        with refusals():
            if not self._filled and self.interaction.response.is_done():
                message = await self.interaction.edit_original_response(
                    **_message(view, editing=True)
                )
                self._filled = True
                return message
            return await self.interaction.followup.send(**_message(view, editing=False), wait=True)

    async def tell(self, view: View) -> None:
        if self._thinking and not self._filled:  # withdraw the public "thinking…" first
            self._thinking = False
            with contextlib.suppress(PlatformRefused), refusals():
                await self.interaction.delete_original_response()
        await _privately(self.interaction, view)
