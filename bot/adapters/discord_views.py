"""Discord buttons: Run, Test and Delete session on versions, Fix on failed runs, Retry.

The buttons are :class:`discord.ui.DynamicItem` s: everything they need is in their
``custom_id`` (``ct:run:<session>:<version>``, ``ct:test:<session>:<version>``,
``ct:fix:<session>``, ``ct:delete:<session>``, ``ct:retry:<session>``) and the classes are
registered once in ``setup_hook``, so a button keeps working after a restart and no per-message
view state is kept in memory. A click is handed to the adapter (:class:`ButtonHandler`), which
checks ownership through the core and answers.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Self, cast

import discord
from discord import ui

__all__ = [
    "BUTTONS",
    "ButtonHandler",
    "SessionButton",
    "VersionButton",
    "fix_view",
    "retry_view",
    "version_view",
]

Interaction = discord.Interaction[discord.Client]


class ButtonHandler(Protocol):
    """What the buttons ask of the adapter (each answers the interaction itself)."""

    async def run_button(self, interaction: Interaction, session_id: int, number: int) -> None: ...

    async def test_button(self, interaction: Interaction, session_id: int, number: int) -> None: ...

    async def fix_button(self, interaction: Interaction, session_id: int) -> None: ...

    async def delete_button(self, interaction: Interaction, session_id: int) -> None: ...

    async def retry_button(self, interaction: Interaction, session_id: int) -> None: ...


def _handler(interaction: Interaction) -> ButtonHandler:
    handler = getattr(interaction.client, "buttons", None)
    if handler is None:
        raise RuntimeError("this client has no codethread button handler")
    return cast(ButtonHandler, handler)


_LOOKS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "run": ("Run", "▶️", discord.ButtonStyle.success),
    "test": ("Test", "🧪", discord.ButtonStyle.primary),
    "fix": ("Fix", "🛠️", discord.ButtonStyle.primary),
    "delete": ("Delete session", "🗑️", discord.ButtonStyle.secondary),
    "retry": ("Retry", "🔁", discord.ButtonStyle.primary),
}


def _button(verb: str, custom_id: str) -> ui.Button[ui.View]:
    label, emoji, style = _LOOKS[verb]
    return ui.Button(label=label, emoji=emoji, style=style, custom_id=custom_id)


class VersionButton(
    ui.DynamicItem[ui.Button[ui.View]],
    template=r"ct:(?P<verb>run|test):(?P<session>[0-9]+):(?P<version>[0-9]+)",
):
    """Run or Test one version: ``ct:run:<session>:<version>``, ``ct:test:…``."""

    def __init__(self, verb: str, session_id: int, number: int) -> None:
        super().__init__(_button(verb, f"ct:{verb}:{session_id}:{number}"))
        self.verb, self.session_id, self.number = verb, session_id, number

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["verb"], int(match["session"]), int(match["version"]))

    async def callback(self, interaction: Interaction) -> None:
        handler = _handler(interaction)
        click = handler.run_button if self.verb == "run" else handler.test_button
        await click(interaction, self.session_id, self.number)


class SessionButton(
    ui.DynamicItem[ui.Button[ui.View]],
    template=r"ct:(?P<verb>fix|delete|retry):(?P<session>[0-9]+)",
):
    """Fix, Delete session or Retry a session: ``ct:fix:<session>``, ``ct:delete:…``, …"""

    def __init__(self, verb: str, session_id: int) -> None:
        super().__init__(_button(verb, f"ct:{verb}:{session_id}"))
        self.verb, self.session_id = verb, session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["verb"], int(match["session"]))

    async def callback(self, interaction: Interaction) -> None:
        handler = _handler(interaction)
        clicks = {
            "fix": handler.fix_button,
            "delete": handler.delete_button,
            "retry": handler.retry_button,
        }
        await clicks[self.verb](interaction, self.session_id)


#: the classes to register with ``Client.add_dynamic_items`` at start-up
BUTTONS: tuple[type[ui.DynamicItem[ui.Button[ui.View]]], ...] = (VersionButton, SessionButton)


def _stateless(view: ui.View) -> ui.View:
    # Clicks are dispatched by custom_id to the registered DynamicItem classes; a stopped view
    # is not kept in the client's view store, so nothing piles up per message.
    view.stop()
    return view


def version_view(session_id: int, number: int, *, can_run: bool, can_test: bool = False) -> ui.View:
    """The buttons under a version: Run (only where the sandbox works), Test (also only for
    languages the model writes tests for) and Delete session."""
    view = ui.View(timeout=None)
    if can_run:
        view.add_item(VersionButton("run", session_id, number))
        if can_test:
            view.add_item(VersionButton("test", session_id, number))
    view.add_item(SessionButton("delete", session_id))
    return _stateless(view)


def retry_view(session_id: int) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(SessionButton("retry", session_id))
    view.add_item(SessionButton("delete", session_id))
    return _stateless(view)


def fix_view(session_id: int) -> ui.View:
    """The button under a failed run or test: Fix (the next version, from what went wrong)."""
    view = ui.View(timeout=None)
    view.add_item(SessionButton("fix", session_id))
    return _stateless(view)
