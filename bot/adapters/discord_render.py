"""How codethread reads and looks on Discord: callers, messages, streaming, errors.

Discord caps a message at 2,000 characters. A version that does not fit goes as a file named
for its language with a short preview (:func:`version_message`); streamed partial output keeps
its fences whole within the cap (``bot.adapters.render.partial``); :class:`LiveMessage` is the
one message a turn is shown in. :func:`explain` is the one place that turns an error into the
message a user sees.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable
from typing import Any

import discord
from discord import app_commands

from bot.adapters.render import Throttle, render_run, render_version, tests_filename
from bot.codeblocks import close_open_fence, fence
from bot.errors import UserError
from bot.languages import Language
from bot.values import Caller, RunReport
from storage import Session, Version

__all__ = [
    "DISCORD_ERRORS",
    "DM_WORKSPACE",
    "LIMIT",
    "REQUIRED_PERMISSIONS",
    "Attachment",
    "LiveMessage",
    "as_file",
    "caller_for",
    "explain",
    "log_error",
    "long_text",
    "permission_names",
    "quietly",
    "request_text",
    "run_message",
    "version_message",
]

log = logging.getLogger("codethread.discord")

Channel = discord.abc.Messageable
#: (filename, text) of a file to send; each try builds its own discord.File (sending closes it)
Attachment = tuple[str, str]
LIMIT = 2000  # characters in one Discord message
#: what a failed Discord call raises (RateLimited: a wait longer than max_ratelimit_timeout)
DISCORD_ERRORS = (discord.HTTPException, discord.RateLimited)
DM_WORKSPACE = "@me"  # the workspace of sessions started in direct messages
#: what the bot needs in a channel where /code is used (the invite URL asks for exactly these)
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    attach_files=True,
    read_message_history=True,
)


def caller_for(user: discord.abc.User, guild_id: int | None, channel: object) -> Caller:
    """Who asks and where; in a thread, the channel is the thread's parent."""
    where = channel.parent_id if isinstance(channel, discord.Thread) else getattr(channel, "id", 0)
    return Caller(
        platform="discord",
        workspace=str(guild_id) if guild_id else DM_WORKSPACE,
        user=str(user.id),
        channel=str(where),
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
    names = _PERMISSION_NAMES.items()
    return ", ".join(label for attr, label in names if getattr(permissions, attr))


def explain(error: BaseException) -> str:
    """The one-line message a user sees for ``error``."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, discord.RateLimited):
        return f"Discord is rate-limiting me; try again in {error.retry_after:.0f} s."
    if isinstance(error, discord.Forbidden):
        return (
            "Discord refused: I'm missing a permission in this channel "
            f"({error.text or 'Forbidden'}). I need: {permission_names(REQUIRED_PERMISSIONS)}."
        )
    if isinstance(error, discord.NotFound):
        return "That message or channel no longer exists on Discord."
    if isinstance(error, discord.HTTPException):
        detail = f": {error.text}" if error.text else ""
        return f"Discord answered with an error ({error.status}{detail}); please try again."
    if isinstance(error, app_commands.AppCommandError):
        return str(error) or "That command could not be run."
    return "Something went wrong on my side (it is logged); please try again."


def log_error(error: BaseException) -> None:
    if isinstance(error, UserError | discord.HTTPException | discord.RateLimited):
        log.info("refused or failed: %s", error)
    else:
        log.error("unexpected error in the Discord adapter", exc_info=error)


async def quietly(work: Awaitable[Any]) -> None:
    """Await a best-effort Discord call; its failure is only logged."""
    try:
        await work
    except DISCORD_ERRORS as err:
        log.info("best-effort Discord call failed: %s", err)


def as_file(attachment: Attachment) -> discord.File:
    filename, text = attachment
    return discord.File(io.BytesIO(text.encode()), filename=filename)


def version_message(
    session: Session, version: Version, language: Language, *, complete: bool = True
) -> tuple[str, Attachment | None]:
    """A version's message text, and its code as ``snippet.<ext>`` when it does not fit."""
    warning = "" if complete else "\n⚠️ The answer was cut off; reply “finish it” to continue."
    rendered = render_version(session, version, language, limit=LIMIT - len(warning))
    attachment = None
    if rendered.filename and rendered.file_content is not None:
        attachment = (rendered.filename, rendered.file_content)
    return rendered.text + warning, attachment


def run_message(report: RunReport, language: Language) -> tuple[str, Attachment | None]:
    """A run or test result as one message: the summary and the outputs, then for a test the
    tests themselves, inline when everything fits and otherwise as their file
    (``test_snippet.py``, ``snippet.test.js``) so that the outputs keep their room."""
    if report.kind != "test" or not report.tests:
        return render_run(report, limit=LIMIT), None
    shown = render_run(report, limit=LIMIT)
    inline = f"{shown}\nThe tests:\n{fence(report.tests, language.fence)}"
    if len(inline) <= LIMIT:
        return inline, None
    filename = tests_filename(language)
    note = f"\nThe tests are attached ({filename})."
    return render_run(report, limit=LIMIT - len(note)) + note, (filename, report.tests)


def long_text(prefix: str, text: str, filename: str) -> tuple[str, Attachment | None]:
    """``prefix + text``, or its beginning and the whole text as a file when it is too long."""
    if len(prefix) + len(text) <= LIMIT:
        return prefix + text, None
    head = text[: LIMIT - len(prefix) - 80]
    head = head[: head.rfind("\n")] if "\n" in head else head
    preview = close_open_fence(prefix + head) + "\n… (the whole answer is attached)"
    return preview, (filename, text)


def request_text(user: discord.abc.User, prompt: str, language: str, model: str) -> str:
    """The public post a /code thread starts from."""
    head = f"**{user.display_name}** asked for {language} ({model}):\n"
    quoted = "\n".join(f"> {line}" for line in prompt.splitlines())
    if len(head) + len(quoted) > LIMIT:
        quoted = quoted[: LIMIT - len(head) - 40].rstrip() + "\n> … (the whole request is used)"
    return head + quoted


class LiveMessage:
    """The one bot message that shows a turn: posted on the first event, edited as the answer
    streams (at most once per ``interval``, one edit in flight, never holding up the stream),
    and finally replaced by the result. Failing edits are logged; the result is still posted.
    """

    def __init__(self, channel: Channel, *, reply_to: discord.Message | None, interval: float):
        self.channel = channel
        self.reply_to = reply_to
        self.message: discord.Message | None = None
        self._throttle = Throttle(interval)
        self._edit: asyncio.Task[None] | None = None
        self._posting = True

    def due(self) -> bool:
        """Whether :meth:`show` would post or edit now (so the caller may skip building it)."""
        if self.message is None:
            return self._posting
        return (self._edit is None or self._edit.done()) and self._throttle.remaining() <= 0

    async def show(self, content: str) -> None:
        """Post ``content``, or edit the message to it if the pace allows (else skip it)."""
        if self.message is None:
            if not self._posting:
                return  # the first post failed; only the result is tried again
            self._throttle.ready()  # the post counts as this interval's edit
            try:
                self.message = await self._post(content, {})
            except DISCORD_ERRORS:
                self._posting = False
            return
        if (self._edit is None or self._edit.done()) and self._throttle.ready():
            self._edit = asyncio.create_task(self._try_edit(self.message, content))

    async def finish(
        self,
        content: str,
        *,
        attachment: Attachment | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        """Show the result: edit the message into it, or post it anew if that fails."""
        if self._edit is not None:
            await self._edit
        if self.message is not None:  # keep the pace: at most one edit per interval
            await asyncio.sleep(self._throttle.remaining())
        extra: dict[str, Any] = {}
        if view is not None:
            extra["view"] = view
        if self.message is not None:
            files = [as_file(attachment)] if attachment else []
            try:
                await self.message.edit(content=content, attachments=files, **extra)
                return
            except DISCORD_ERRORS as err:
                log.warning("could not edit the live message (%s); posting the result anew", err)
        if attachment is not None:
            extra["file"] = as_file(attachment)
        self.message = await self._post(content, extra)

    async def _post(self, content: str, extra: dict[str, Any]) -> discord.Message:
        if self.reply_to is not None:
            extra["reference"] = self.reply_to.to_reference(fail_if_not_exists=False)
            extra["mention_author"] = False
        try:
            return await self.channel.send(content, **extra)
        except DISCORD_ERRORS as err:
            log.warning("could not post in a Discord channel: %s", err)
            raise

    @staticmethod
    async def _try_edit(message: discord.Message, content: str) -> None:
        try:
            await message.edit(content=content)
        except DISCORD_ERRORS as err:
            log.info("skipped a progress edit: %s", err)
