"""Everything that answers a Discord interaction: ``/code``, ``/snippets``, autocomplete, buttons
and the Run with input… form.

Each handler acknowledges first (Discord's 3-second window: ``defer``; a refusal found without
I/O is the acknowledgement itself), turns the interaction into a
:class:`~bot.values.Caller` and plain values, and hands the rest to the presenter as a job of
the adapter (so that shutdown drains it). With a worker (``serve``), a checked button press
and a checked ``/code`` are durable jobs instead, written down before they are acknowledged
(:mod:`.durable`); ``/snippets``, the Run with input… form and its submission stay in memory.

``/snippets``, Delete and refusals answer only the person who acted; Run and Test answer in
the interaction's public response; Fix and Retry stream the next version into the thread, as
a reply to the message whose button was pressed.
Run with input… answers with a modal (:mod:`.forms`); its submit is checked like a button
press (the session of this thread, a member who may post here) and runs like Run, with the
form's stdin and arguments; arguments that cannot be split are refused privately.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.adapters.discord.forms import RunForm, run_form
from bot.adapters.discord.surface import (
    DM_WORKSPACE,
    MEMBER_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    ResponseSurface,
    caller_for,
    permission_names,
    refusals,
)
from bot.core import StartCheck
from bot.errors import UserError
from bot.present import PlatformRefused
from bot.run_options import parse_args
from bot.values import Action, Caller
from storage import SessionKey

if TYPE_CHECKING:
    from bot.adapters.discord.adapter import DiscordAdapter

__all__ = ["Interactions", "open_thread"]

Interaction = discord.Interaction[discord.Client]
Choices = list[app_commands.Choice[str]]
Work = Callable[[ResponseSurface, Caller], Coroutine[Any, Any, Any]]


def _caller(interaction: Interaction) -> Caller:
    return caller_for(interaction.user, interaction.guild_id, interaction.channel)


async def open_thread(
    message: discord.Message | discord.PartialMessage, caller: Caller, checked: StartCheck
) -> tuple[discord.abc.Messageable, SessionKey]:
    """Where a new session lives: a thread from its request post, or in a DM (which has no
    threads) the DM itself, the session keyed by the request post."""
    if caller.workspace == DM_WORKSPACE:
        thread_id = str(message.id)
        where: discord.abc.Messageable = message.channel
    else:
        name = f"{checked.language.label}: {checked.prompt.splitlines()[0]}"
        with refusals():
            thread = await message.create_thread(name=name[:100], auto_archive_duration=1440)
        thread_id, where = str(thread.id), thread
    key = SessionKey(
        platform="discord",
        workspace=caller.workspace,
        channel=str(message.channel.id),
        thread=thread_id,
    )
    return where, key


class Interactions:
    """The handlers behind :mod:`.commands` and :mod:`.buttons`."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter
        self.sessions = adapter.sessions
        self.presenter = adapter.presenter

    # -- /code -------------------------------------------------------------------------------

    async def code(
        self, interaction: Interaction, prompt: str, language: str | None, model: str | None
    ) -> None:
        """Post the request, open a thread from that post, and start the session's first turn
        there, in the thread's line before any reply can be."""
        self.adapter.count("code")
        surface = self.adapter.response(interaction)
        try:
            caller = _caller(interaction)
            self._check_place(interaction)
            checked = self.sessions.check(caller, prompt=prompt, language=language, model=model)
        except Exception as err:  # the refusal is the acknowledgement: nothing is posted
            await self.presenter.fail(surface, err, request=prompt)
            return
        worker = self.adapter.worker
        if worker is not None:  # a job first, performed by the worker (see .durable)
            await self.adapter.durable.code(
                worker, interaction, surface, caller, prompt=prompt, language=language, model=model
            )
            return
        try:
            await surface.acknowledge()
            request = self.presenter.request_post(surface, caller, checked)
            message = await surface.post(request)
            try:
                where, key = await open_thread(message, caller, checked)
            except Exception:
                with contextlib.suppress(PlatformRefused):
                    await surface.remove(message)  # no request post without its thread
                raise
        except Exception as err:
            await self.presenter.fail(surface, err, request=prompt)
            return
        place = self.adapter.in_channel(where, interaction=interaction)
        turn = self.presenter.turn(
            place, lambda: self.sessions.open(caller, key, checked), request=prompt
        )
        self.adapter.jobs.spawn(turn)

    def _check_place(self, interaction: Interaction) -> None:
        """Refuse, before anything is posted, a place where /code cannot open a thread."""
        if interaction.guild_id is None:
            if not self.adapter.allow_dms:
                raise PlatformRefused("dms_off")
        elif not isinstance(interaction.channel, discord.TextChannel):
            raise PlatformRefused("not_a_text_channel")
        elif missing := REQUIRED_PERMISSIONS & ~interaction.app_permissions:
            raise PlatformRefused("missing_permission", permission_names(missing))
        elif MEMBER_PERMISSIONS & ~interaction.permissions:  # the bot would post for them
            raise PlatformRefused("member_cannot_start")

    # -- autocomplete ------------------------------------------------------------------------

    def language_choices(self, current: str) -> Choices:
        self.adapter.count("autocomplete")
        word = current.strip().lower()
        return [
            app_commands.Choice(name=lang.label, value=lang.name)
            for lang in self.sessions.languages
            if word in lang.name or word in lang.label.lower() or word in lang.aliases
        ][:25]

    def model_choices(self, current: str) -> Choices:
        self.adapter.count("autocomplete")
        word = current.strip().lower()
        choices = []
        for status in self.sessions.models():
            spec = status.spec
            if word in spec.name.lower() or word in spec.description.lower():
                label = f"{spec.name} — {spec.description}" if spec.description else spec.name
                choices.append(app_commands.Choice(name=label[:100], value=spec.name))
        return choices[:25]

    async def snippet_choices(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        self.adapter.count("autocomplete")
        word = current.strip().lower().lstrip("#")
        return [
            app_commands.Choice(name=f"#{s.id} {s.title}"[:100], value=s.id)
            for s in await self.sessions.list_sessions(_caller(interaction))
            if word in str(s.id) or word in s.title.lower()
        ][:25]

    # -- /snippets ---------------------------------------------------------------------------

    async def snippets_list(self, interaction: Interaction) -> None:
        await self._private(interaction, self.presenter.list)

    async def snippets_show(
        self, interaction: Interaction, session_id: int, number: int | None
    ) -> None:
        await self._private(
            interaction, lambda s, c: self.presenter.show_version(s, c, session_id, number)
        )

    async def snippets_run(
        self,
        interaction: Interaction,
        session_id: int,
        number: int | None,
        stdin: str | None = None,
        args: str | None = None,
    ) -> None:
        try:
            argv = parse_args(args or "")
        except UserError as err:  # the refusal is the acknowledgement: nothing to withdraw
            self.adapter.count("snippets")
            await self.presenter.fail(self.adapter.response(interaction), err)
            return
        await self._private(
            interaction,
            lambda s, c: self.presenter.run(
                s, c, session_id, number=number, private=True, stdin=stdin or "", args=argv
            ),
        )

    async def snippets_files(self, interaction: Interaction, session_id: int) -> None:
        await self._private(interaction, lambda s, c: self.presenter.files(s, c, session_id))

    async def snippets_search(self, interaction: Interaction, text: str) -> None:
        await self._private(interaction, lambda s, c: self.presenter.list(s, c, search=text))

    async def snippets_diff(
        self, interaction: Interaction, session_id: int, old: int | None, new: int | None
    ) -> None:
        await self._private(
            interaction,
            lambda s, c: self.presenter.compare(s, c, session_id, old, new, private=True),
        )

    async def snippets_delete(self, interaction: Interaction, session_id: int) -> None:
        await self._private(interaction, lambda s, c: self.presenter.delete(s, c, session_id))

    async def _private(self, interaction: Interaction, work: Work) -> None:
        self.adapter.count("snippets")
        await self._answer(interaction, work, private=True)

    async def _answer(self, interaction: Interaction, work: Work, *, private: bool) -> None:
        """Defer (publicly with "thinking…", or ``private``ly), then do ``work`` as a job."""
        surface = self.adapter.response(interaction)
        try:
            await surface.acknowledge(private=private)
        except Exception as err:
            await self.presenter.fail(surface, err)
            return
        self.adapter.jobs.spawn(work(surface, _caller(interaction)))

    # -- buttons -----------------------------------------------------------------------------

    async def button(self, interaction: Interaction, action: Action) -> None:
        """A click on a version's, run's or failure's button."""
        self.adapter.count("button")
        if action.kind == "input":
            await self._open_form(interaction, action)
            return
        channel, caller = interaction.channel, _caller(interaction)
        streams = action.makes_version and isinstance(channel, discord.abc.Messageable)
        # the next version streams in the thread, as a reply to the pressed message
        place = (
            self.adapter.in_channel(channel, reply_to=interaction.message, interaction=interaction)
            if streams and isinstance(channel, discord.abc.Messageable)
            else self.adapter.response(interaction)
        )
        try:
            await self._check_button(interaction, caller, action)
        except Exception as err:  # the refusal is the acknowledgement
            await self.presenter.fail(place, err)
            return
        worker = self.adapter.worker
        if worker is not None:  # a job first, performed by the worker (see .durable)
            await self.adapter.durable.press(
                worker, interaction, caller, action, place, streams=streams
            )
            return
        if streams:
            try:
                with refusals():
                    await interaction.response.defer()
            except Exception as err:
                await self.presenter.fail(place, err)
                return
            self.adapter.jobs.spawn(self.presenter.act(place, caller, action))
            return
        await self._answer(
            interaction,
            lambda s, c: self.presenter.act(s, c, action),
            private=action.kind == "delete",
        )

    async def _open_form(self, interaction: Interaction, action: Action) -> None:
        """Run with input…: the form is the acknowledgement (a refusal, if any, instead)."""
        try:
            await self._check_button(interaction, _caller(interaction), action)
            with refusals():
                await interaction.response.send_modal(run_form(action))
        except Exception as err:
            await self.presenter.fail(self.adapter.response(interaction), err)

    async def form_submitted(self, interaction: Interaction, form: RunForm) -> None:
        """A submitted Run with input… form: run the version with its stdin and arguments, in
        the interaction's public response like Run."""
        self.adapter.count("form")
        action = form.action
        try:
            await self._check_button(interaction, _caller(interaction), action)
            argv = parse_args(form.args)
        except Exception as err:
            await self.presenter.fail(self.adapter.response(interaction), err)
            return
        await self._answer(
            interaction,
            lambda s, c: self.presenter.run(
                s, c, action.session_id, number=action.number, stdin=form.stdin, args=argv
            ),
            private=False,
        )

    async def _check_button(self, interaction: Interaction, caller: Caller, action: Action) -> None:
        """Refuse, before anything is posted, a button of another thread's session (a copy
        shown by ``/snippets show``, say), and a public answer for a member who may not post
        in threads here."""
        session = await self.sessions.get(action.session_id, caller)
        key = session.key
        home = key.channel if key.workspace == DM_WORKSPACE else key.thread
        if str(interaction.channel_id) != home:
            raise PlatformRefused("other_session")
        may_post = interaction.guild_id is None or interaction.permissions.send_messages_in_threads
        if action.kind != "delete" and not may_post:
            raise PlatformRefused("member_cannot_post")

    # -- errors ------------------------------------------------------------------------------

    async def on_command_error(
        self, interaction: Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The command tree's error handler (the handlers above report their own errors)."""
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await self.presenter.fail(self.adapter.response(interaction), original)
