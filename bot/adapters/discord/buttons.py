"""Discord buttons for the actions a result offers (Run, Test, Fix, Retry, Diff, Delete …).

Each button is a :class:`discord.ui.DynamicItem` whose ``custom_id`` is ``ct:`` and the
action's own encoding (``ct:run:12:3``, ``ct:retry:12:7``, ``ct:delete:12``), and the class is
registered once in ``setup_hook``: a button keeps working after a restart, and no per-message
view state is kept in memory. Buttons of earlier releases (``ct:fix:12``, ``ct:retry:12``)
decode to an action without a version or failure, which the core reads as "the latest".
A click is handed to the adapter's handler, which acknowledges it and asks the presenter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, Self, cast, get_args

import discord
from discord import ui

from bot.present import words
from bot.values import Action, ActionKind

__all__ = ["ActionButton", "ButtonHandler", "button_rows"]

Interaction = discord.Interaction[discord.Client]
_KINDS = "|".join(get_args(ActionKind))
_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
    "default": discord.ButtonStyle.secondary,
}


class ButtonHandler(Protocol):
    async def button(self, interaction: Interaction, action: Action) -> None: ...


class ActionButton(
    ui.DynamicItem[ui.Button[ui.View]],
    template=rf"ct:(?P<action>(?:{_KINDS}):[0-9]+(?::[0-9]+)?)",
):
    def __init__(self, action: Action) -> None:
        look = words.look(action)
        button: ui.Button[ui.View] = ui.Button(
            label=look.label,
            emoji=look.emoji,
            style=_STYLES.get(look.style, discord.ButtonStyle.secondary),
            custom_id=f"ct:{action.encode()}",
        )
        super().__init__(button)
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        action = Action.decode(match["action"])
        if action is None:  # the template admits only what decode reads
            raise ValueError(f"not a codethread button: {match.string!r}")
        return cls(action)

    async def callback(self, interaction: Interaction) -> None:
        handler = getattr(interaction.client, "buttons", None)
        if handler is None:
            raise RuntimeError("this client has no codethread button handler")
        await cast(ButtonHandler, handler).button(interaction, self.action)


def button_rows(actions: Sequence[Action]) -> list[ui.ActionRow[Any]]:
    """The buttons of ``actions``, in action rows of five (Discord's most in a row)."""
    buttons = [ActionButton(action) for action in actions]
    return [ui.ActionRow[Any](*buttons[i : i + 5]) for i in range(0, len(buttons), 5)]
