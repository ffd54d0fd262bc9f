"""Everything that answers a Discord interaction: ``/code``, ``/snippets``, autocomplete, buttons.

Each handler acknowledges first (Discord's 3-second window: ``defer``, or an immediate answer
for refusals found without I/O), turns the interaction into a :class:`~bot.values.Caller` and
plain values, calls the core, and renders the result. ``/snippets`` and refusals answer only
the person who acted (ephemeral). Errors from every handler end in :meth:`Interactions.report`,
which words them with :func:`~bot.adapters.discord_render.explain` and withdraws a public
"thinking…" post that would otherwise be left dangling.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.adapters.discord_render import (
    DISCORD_ERRORS,
    DM_WORKSPACE,
    LIMIT,
    REQUIRED_PERMISSIONS,
    as_file,
    caller_for,
    explain,
    log_error,
    permission_names,
    quietly,
    request_text,
    run_message,
    version_message,
)
from bot.adapters.discord_views import fix_view
from bot.adapters.render import render_run
from bot.codeblocks import fence
from bot.core import SessionService
from bot.errors import UserError
from bot.runs import RunService
from bot.values import Caller, RunReport
from storage import Session, SessionKey

__all__ = ["Host", "Interactions"]

log = logging.getLogger("codethread.discord")

Interaction = discord.Interaction[discord.Client]
Channel = discord.abc.Messageable
Choices = list[app_commands.Choice[str]]
#: the statuses a Fix can help with ("unavailable" is the sandbox's problem, not the code's)
FIXABLE = frozenset({"failed", "compile_error", "limit"})


class Host(Protocol):
    """What the interactions need of the adapter."""

    service: SessionService
    runs: RunService
    allow_dms: bool

    def count(self, kind: str) -> None: ...

    def queue_turn(
        self,
        lane: int,
        channel: Channel,
        session: int | Awaitable[int | None],
        caller: Caller,
        text: str,
    ) -> None: ...

    def queue_fix(
        self,
        lane: int,
        channel: Channel,
        session_id: int,
        caller: Caller,
        *,
        reply_to: discord.Message | None,
        report: Callable[[BaseException], Awaitable[None]],
    ) -> None: ...


class Interactions:
    """The handlers behind the commands of :mod:`bot.adapters.discord_commands` and the
    buttons of :mod:`bot.adapters.discord_views`."""

    def __init__(self, host: Host, client: discord.Client) -> None:
        self.host = host
        self.service = host.service
        self.runs = host.runs
        self.client = client

    # -- /code -------------------------------------------------------------------------------

    async def code(
        self, interaction: Interaction, prompt: str, language: str | None, model: str | None
    ) -> None:
        """Post the request, open a thread from that post, start the session, queue turn one."""
        self.host.count("code")
        caller = caller_for(interaction.user, interaction.guild_id, interaction.channel)
        channel = interaction.channel
        if interaction.guild_id is None:
            if not self.host.allow_dms:
                raise UserError("I don't take requests in direct messages; use /code in a server.")
        elif not isinstance(channel, discord.TextChannel):
            raise UserError("Use /code in a text channel: I open a thread there for the snippet.")
        elif missing := REQUIRED_PERMISSIONS & ~interaction.app_permissions:
            raise UserError(
                f"I can't open a thread here: I'm missing {permission_names(missing)} in this "
                "channel. Ask an admin to grant it, or use /code in another channel."
            )
        # refuse bad input before anything is posted
        checked = self.service.check(caller, prompt=prompt, language=language, model=model)
        lang, spec, title = checked.language, checked.model, checked.prompt.splitlines()[0]
        await interaction.response.defer(thinking=True)
        interaction.extras["withdraw"] = True  # on failure, take the public post back
        message = await interaction.edit_original_response(
            content=request_text(interaction.user, prompt, lang.label, spec.name)
        )
        where: Channel
        if interaction.guild_id is None:  # a DM has no threads: the DM itself holds sessions
            where, lane, thread_key = message.channel, message.channel.id, str(message.id)
        else:
            thread = await _open_thread(message, f"{lang.label}: {title}")
            where, lane, thread_key = thread, thread.id, str(thread.id)
        key = SessionKey(
            platform="discord",
            workspace=caller.workspace,
            channel=str(message.channel.id),
            thread=thread_key,
        )
        started: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.host.queue_turn(lane, where, started, caller, prompt)  # before any reply can come
        try:
            session = await self.service.start(
                caller=caller, key=key, prompt=prompt, language=lang.name, model=spec.name
            )
            started.set_result(session.id)
            interaction.extras["withdraw"] = False
        except Exception:
            if isinstance(where, discord.Thread):
                await quietly(where.delete())
            raise
        finally:
            if not started.done():
                started.set_result(None)  # the queued turn ends without running

    def language_choices(self, current: str) -> Choices:
        self.host.count("autocomplete")
        word = current.strip().lower()
        return [
            app_commands.Choice(name=lang.label, value=lang.name)
            for lang in self.service.languages
            if word in lang.name or word in lang.label.lower() or word in lang.aliases
        ][:25]

    def model_choices(self, current: str) -> Choices:
        self.host.count("autocomplete")
        word = current.strip().lower()
        choices = []
        for status in self.service.models():
            spec = status.spec
            if word in spec.name.lower() or word in spec.description.lower():
                label = f"{spec.name} — {spec.description}" if spec.description else spec.name
                choices.append(app_commands.Choice(name=label[:100], value=spec.name))
        return choices[:25]

    # -- /snippets ---------------------------------------------------------------------------

    async def snippet_choices(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        self.host.count("autocomplete")
        word = current.strip().lower().lstrip("#")
        return [
            app_commands.Choice(name=f"#{s.id} {s.title}"[:100], value=s.id)
            for s in await self.service.list_sessions(_caller(interaction))
            if word in str(s.id) or word in s.title.lower()
        ][:25]

    async def snippets_list(self, interaction: Interaction) -> None:
        await self._private(interaction)
        sessions = await self.service.list_sessions(_caller(interaction))
        if not sessions:
            await _tell(interaction, "You have no snippets here yet: try /code.")
            return
        lines = ["Your snippets here, most recent first:"]
        for s in sessions:
            where = f" · <#{s.key.thread}>" if s.key.workspace != DM_WORKSPACE else ""
            line = f"`#{s.id}` {s.language} · v{s.version_count}{where} · {s.title}"
            if sum(map(len, lines)) + len(lines) + len(line) > LIMIT - 20:
                lines.append("…")
                break
            lines.append(line)
        await _tell(interaction, "\n".join(lines))

    async def snippets_show(
        self, interaction: Interaction, session_id: int, number: int | None
    ) -> None:
        await self._private(interaction)
        session, version = await self.service.show(
            session_id, number=number, caller=_caller(interaction)
        )
        if version is None:
            await _tell(interaction, f"Snippet #{session.id} has no version yet.")
            return
        content, attachment = version_message(
            session, version, self.service.language(session.language)
        )
        extra: dict[str, Any] = {"file": as_file(attachment)} if attachment else {}
        await _tell(interaction, content, **extra)

    async def snippets_run(
        self, interaction: Interaction, session_id: int, number: int | None
    ) -> None:
        await self._private(interaction)
        report = await self.runs.run(session_id, _caller(interaction), number=number, scoped=True)
        await _tell(interaction, render_run(report, limit=LIMIT))

    async def snippets_delete(self, interaction: Interaction, session_id: int) -> None:
        await self._private(interaction)
        await self._delete(interaction, session_id)

    async def _private(self, interaction: Interaction) -> None:
        self.host.count("snippets")
        await interaction.response.defer(ephemeral=True, thinking=True)

    # -- buttons -----------------------------------------------------------------------------

    async def run_button(self, interaction: Interaction, session_id: int, number: int) -> None:
        """Run a version for everyone in the thread to see."""
        self.host.count("button")
        try:
            await interaction.response.defer(thinking=True)
            interaction.extras["withdraw"] = True
            report = await self.runs.run(session_id, _caller(interaction), number=number)
            interaction.extras["withdraw"] = False
            await self._show_run(interaction, report)
        except Exception as err:
            await self.report(interaction, err)

    async def test_button(self, interaction: Interaction, session_id: int, number: int) -> None:
        """Have the model write unit tests for a version, run them, show the result publicly.

        Tests are made for the latest version only; a click under an older one is refused.
        """
        self.host.count("button")
        try:
            await interaction.response.defer(thinking=True)
            interaction.extras["withdraw"] = True
            _, latest = await self.service.show(session_id)
            if latest is not None and latest.number != number:
                raise UserError(
                    f"Test works on the latest version of #{session_id}: press Test under "
                    f"version {latest.number}."
                )
            report = await self.runs.test(session_id, _caller(interaction))
            interaction.extras["withdraw"] = False
            await self._show_run(interaction, report)
        except Exception as err:
            await self.report(interaction, err)

    async def fix_button(self, interaction: Interaction, session_id: int) -> None:
        """Make the next version from the latest failed run, in its thread's turn order."""
        self.host.count("button")
        try:
            channel = interaction.channel
            if not isinstance(channel, discord.abc.Messageable):
                raise UserError("Press Fix in the snippet's thread.")
            await interaction.response.defer()
            self.host.queue_fix(
                channel.id,
                channel,
                session_id,
                _caller(interaction),
                reply_to=interaction.message,
                report=functools.partial(self.report, interaction),
            )
        except Exception as err:
            await self.report(interaction, err)

    async def _show_run(self, interaction: Interaction, report: RunReport) -> None:
        """Turn the deferred "thinking…" post into the result, with Fix when it failed."""
        language = self.service.language(report.session.language)
        content, attachment = run_message(report, language)
        extra: dict[str, Any] = {}
        if attachment is not None:
            extra["attachments"] = [as_file(attachment)]
        if report.result.status in FIXABLE:
            extra["view"] = fix_view(report.session.id)
        await interaction.edit_original_response(content=content, **extra)

    async def delete_button(self, interaction: Interaction, session_id: int) -> None:
        self.host.count("button")
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self._delete(interaction, session_id)
        except Exception as err:
            await self.report(interaction, err)

    async def retry_button(self, interaction: Interaction, session_id: int) -> None:
        """Send a session's failed request again, in its thread's turn order."""
        self.host.count("button")
        try:
            channel = interaction.channel
            request = self.service.failed_request(session_id)
            if request is None or not isinstance(channel, discord.abc.Messageable):
                raise UserError("Nothing to retry: the last request of this snippet did not fail.")
            await interaction.response.defer()
            caller = _caller(interaction)
            self.host.queue_turn(channel.id, channel, session_id, caller, request)
        except Exception as err:
            await self.report(interaction, err)

    async def _delete(self, interaction: Interaction, session_id: int) -> None:
        session = await self.service.delete(session_id, _caller(interaction))  # owner only
        await _tell(interaction, f"Deleted snippet #{session.id} ({session.title}).")
        if session.key.platform == "discord" and session.key.workspace != DM_WORKSPACE:
            await quietly(self._close_thread(session))

    async def _close_thread(self, session: Session) -> None:
        thread_id = int(session.key.thread)
        thread = self.client.get_channel(thread_id) or await self.client.fetch_channel(thread_id)
        if isinstance(thread, discord.Thread):
            await thread.send(
                f"🗑️ Snippet #{session.id} was deleted by its owner; "
                "replies here are no longer read."
            )
            await thread.edit(archived=True)

    # -- errors ------------------------------------------------------------------------------

    async def on_command_error(
        self, interaction: Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The command tree's error handler."""
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await self.report(interaction, original)

    async def report(self, interaction: Interaction, error: BaseException) -> None:
        """Tell the person who acted what went wrong, privately; withdraw a pending public post.

        A failed /code quotes the request back, so that nothing typed is lost.
        """
        log_error(error)
        text = f"⚠️ {explain(error)}"
        prompt = getattr(interaction.namespace, "prompt", None)
        if interaction.command is not None and interaction.command.name == "code" and prompt:
            room = LIMIT - len(text) - 60
            text += "\nYour request, to send again:\n" + fence(str(prompt)[:room])
        try:
            if interaction.extras.get("withdraw"):
                await quietly(interaction.delete_original_response())
            if interaction.response.is_done():
                await interaction.followup.send(text[:LIMIT], ephemeral=True)
            else:
                await interaction.response.send_message(text[:LIMIT], ephemeral=True)
        except DISCORD_ERRORS as err:
            log.warning("could not report an error to a Discord user: %s", err)


def _caller(interaction: Interaction) -> Caller:
    return caller_for(interaction.user, interaction.guild_id, interaction.channel)


async def _tell(interaction: Interaction, content: str, **extra: Any) -> None:
    """Answer a deferred interaction privately."""
    await interaction.followup.send(content, ephemeral=True, **extra)


async def _open_thread(message: discord.Message, name: str) -> discord.Thread:
    try:
        return await message.create_thread(name=name[:100], auto_archive_duration=1440)
    except discord.Forbidden as err:
        raise UserError(
            "I can't open a thread here: Discord says I'm missing a permission "
            f"({err.text or 'Forbidden'}). I need {permission_names(REQUIRED_PERMISSIONS)}."
        ) from err
