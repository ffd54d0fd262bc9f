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
    "DeleteButton",
    "FixButton",
    "RetryButton",
    "RunButton",
    "TestButton",
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


class RunButton(
    ui.DynamicItem[ui.Button[ui.View]],
    template=r"ct:run:(?P<session>[0-9]+):(?P<version>[0-9]+)",
):
    def __init__(self, session_id: int, number: int) -> None:
        super().__init__(
            ui.Button(
                label="Run",
                emoji="▶️",
                style=discord.ButtonStyle.success,
                custom_id=f"ct:run:{session_id}:{number}",
            )
        )
        self.session_id = session_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["session"]), int(match["version"]))

    async def callback(self, interaction: Interaction) -> None:
        await _handler(interaction).run_button(interaction, self.session_id, self.number)


class TestButton(
    ui.DynamicItem[ui.Button[ui.View]],
    template=r"ct:test:(?P<session>[0-9]+):(?P<version>[0-9]+)",
):
    __test__ = False  # not a pytest test class

    def __init__(self, session_id: int, number: int) -> None:
        super().__init__(
            ui.Button(
                label="Test",
                emoji="🧪",
                style=discord.ButtonStyle.primary,
                custom_id=f"ct:test:{session_id}:{number}",
            )
        )
        self.session_id = session_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["session"]), int(match["version"]))

    async def callback(self, interaction: Interaction) -> None:
        await _handler(interaction).test_button(interaction, self.session_id, self.number)


class FixButton(ui.DynamicItem[ui.Button[ui.View]], template=r"ct:fix:(?P<session>[0-9]+)"):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            ui.Button(
                label="Fix",
                emoji="🛠️",
                style=discord.ButtonStyle.primary,
                custom_id=f"ct:fix:{session_id}",
            )
        )
        self.session_id = session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["session"]))

    async def callback(self, interaction: Interaction) -> None:
        await _handler(interaction).fix_button(interaction, self.session_id)


class DeleteButton(ui.DynamicItem[ui.Button[ui.View]], template=r"ct:delete:(?P<session>[0-9]+)"):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            ui.Button(
                label="Delete session",
                emoji="🗑️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ct:delete:{session_id}",
            )
        )
        self.session_id = session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["session"]))

    async def callback(self, interaction: Interaction) -> None:
        await _handler(interaction).delete_button(interaction, self.session_id)


class RetryButton(ui.DynamicItem[ui.Button[ui.View]], template=r"ct:retry:(?P<session>[0-9]+)"):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            ui.Button(
                label="Retry",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=f"ct:retry:{session_id}",
            )
        )
        self.session_id = session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["session"]))

    async def callback(self, interaction: Interaction) -> None:
        await _handler(interaction).retry_button(interaction, self.session_id)


#: the classes to register with ``Client.add_dynamic_items`` at start-up
BUTTONS: tuple[type[ui.DynamicItem[ui.Button[ui.View]]], ...] = (
    RunButton,
    TestButton,
    FixButton,
    DeleteButton,
    RetryButton,
)


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
        view.add_item(RunButton(session_id, number))
        if can_test:
            view.add_item(TestButton(session_id, number))
    view.add_item(DeleteButton(session_id))
    return _stateless(view)


def retry_view(session_id: int) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(RetryButton(session_id))
    view.add_item(DeleteButton(session_id))
    return _stateless(view)


def fix_view(session_id: int) -> ui.View:
    """The button under a failed run or test: Fix (the next version, from what went wrong)."""
    view = ui.View(timeout=None)
    view.add_item(FixButton(session_id))
    return _stateless(view)
