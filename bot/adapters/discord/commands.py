"""The Discord slash commands: ``/code`` and ``/snippets list|search|show|diff|run|files|delete``.

``/snippets run id [version] [stdin] [args]`` takes the program's standard input as one line
(Discord's slash options hold no line breaks: multi-line input goes through the Run with
input… button's form) and its arguments quoted like a shell's.

Only the shapes live here (names, options, descriptions, autocomplete); every callback hands
the interaction to :class:`~bot.adapters.discord.interactions.Interactions`, which
acknowledges it and asks the presenter. Options that name a language, a model or a snippet
autocomplete from the live lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.adapters.discord.forms import STDIN_LIMIT
from bot.present.words import COMMAND_HELP as HELP

if TYPE_CHECKING:
    from bot.adapters.discord.interactions import Interactions

__all__ = ["build_commands"]

Interaction = discord.Interaction[discord.Client]
Choices = list[app_commands.Choice[str]]


def build_commands(
    handler: Interactions, *, allow_dms: bool
) -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """The commands to add to the tree; usable in servers, and in DMs only if ``allow_dms``."""

    @app_commands.command(name="code", description=HELP["code"])
    @app_commands.describe(
        prompt=HELP["code.prompt"],
        language=HELP["code.language"],
        model=HELP["code.model"],
    )
    async def code(
        interaction: Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        language: str | None = None,
        model: str | None = None,
    ) -> None:
        await handler.code(interaction, prompt, language, model)

    @code.autocomplete("language")
    async def _languages(interaction: Interaction, current: str) -> Choices:
        return handler.language_choices(current)

    @code.autocomplete("model")
    async def _models(interaction: Interaction, current: str) -> Choices:
        return handler.model_choices(current)

    snippets = app_commands.Group(name="snippets", description=HELP["snippets"])

    @snippets.command(name="list", description=HELP["snippets.list"])
    async def list_(interaction: Interaction) -> None:
        await handler.snippets_list(interaction)

    @snippets.command(name="show", description=HELP["snippets.show"])
    @app_commands.rename(session="id")
    @app_commands.describe(session=HELP["id"], version=HELP["version"])
    async def show(interaction: Interaction, session: int, version: int | None = None) -> None:
        await handler.snippets_show(interaction, session, version)

    @snippets.command(name="search", description=HELP["snippets.search"])
    @app_commands.describe(text=HELP["search.text"])
    async def search(interaction: Interaction, text: str) -> None:
        await handler.snippets_search(interaction, text)

    @snippets.command(name="diff", description=HELP["snippets.diff"])
    @app_commands.rename(session="id")
    @app_commands.describe(session=HELP["id"], old=HELP["diff.old"], new=HELP["diff.new"])
    async def diff(
        interaction: Interaction, session: int, old: int | None = None, new: int | None = None
    ) -> None:
        await handler.snippets_diff(interaction, session, old, new)

    @snippets.command(name="run", description=HELP["snippets.run"])
    @app_commands.rename(session="id")
    @app_commands.describe(
        session=HELP["id"], version=HELP["version"], stdin=HELP["run.stdin"], args=HELP["run.args"]
    )
    async def run(
        interaction: Interaction,
        session: int,
        version: int | None = None,
        stdin: app_commands.Range[str, 1, STDIN_LIMIT] | None = None,
        args: str | None = None,
    ) -> None:
        await handler.snippets_run(interaction, session, version, stdin, args)

    @snippets.command(name="files", description=HELP["snippets.files"])
    @app_commands.rename(session="id")
    @app_commands.describe(session=HELP["id"])
    async def files(interaction: Interaction, session: int) -> None:
        await handler.snippets_files(interaction, session)

    @snippets.command(name="delete", description=HELP["snippets.delete"])
    @app_commands.rename(session="id")
    @app_commands.describe(session=HELP["id"])
    async def delete(interaction: Interaction, session: int) -> None:
        await handler.snippets_delete(interaction, session)

    with_ids: list[app_commands.Command[Any, ..., None]] = [show, diff, run, files, delete]
    for command in with_ids:

        @command.autocomplete("session")
        async def _snippets(
            interaction: Interaction, current: str
        ) -> list[app_commands.Choice[int]]:
            return await handler.snippet_choices(interaction, current)

    contexts = app_commands.AppCommandContext(guild=True, dm_channel=allow_dms)
    code.allowed_contexts = snippets.allowed_contexts = contexts
    return [code, snippets]
