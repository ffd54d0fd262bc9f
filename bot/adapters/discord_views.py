"""Discord buttons on versions (Run, Delete session, Retry) and how a run report is shown.

The buttons are :class:`discord.ui.DynamicItem` s: everything they need is in their
``custom_id`` (``ct:run:<session>:<version>``, ``ct:delete:<session>``, ``ct:retry:<session>``)
and the classes are registered once in ``setup_hook``, so a button keeps working after a restart
and no per-message view state is kept in memory. A click is handed to the adapter
(:class:`ButtonHandler`), which checks ownership through the core and answers.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Self, cast

import discord
from discord import ui

from bot.codeblocks import fence
from bot.values import RunReport

__all__ = [
    "BUTTONS",
    "ButtonHandler",
    "DeleteButton",
    "RetryButton",
    "RunButton",
    "render_run",
    "retry_view",
    "version_view",
]

Interaction = discord.Interaction[discord.Client]


class ButtonHandler(Protocol):
    """What the buttons ask of the adapter (each answers the interaction itself)."""

    async def run_button(self, interaction: Interaction, session_id: int, number: int) -> None: ...

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
    DeleteButton,
    RetryButton,
)


def _stateless(view: ui.View) -> ui.View:
    # Clicks are dispatched by custom_id to the registered DynamicItem classes; a stopped view
    # is not kept in the client's view store, so nothing piles up per message.
    view.stop()
    return view


def version_view(session_id: int, number: int, *, can_run: bool) -> ui.View:
    """The buttons under a version: Run (only where the sandbox works) and Delete session."""
    view = ui.View(timeout=None)
    if can_run:
        view.add_item(RunButton(session_id, number))
    view.add_item(DeleteButton(session_id))
    return _stateless(view)


def retry_view(session_id: int) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(RetryButton(session_id))
    view.add_item(DeleteButton(session_id))
    return _stateless(view)


def _clip(text: str, size: int) -> str:
    """The end of ``text`` in about ``size`` characters (the end of output matters most)."""
    if len(text) <= size:
        return text
    if size <= 0:
        return "…"
    cut = text[-size:]
    newline = cut.find("\n")
    if 0 <= newline < size // 2:
        cut = cut[newline + 1 :]
    return "…\n" + cut


def render_run(report: RunReport, *, limit: int = 2000) -> str:
    """A run report as one message: the summary line, then stdout/stderr in code blocks."""
    result = report.result
    parts = [
        f"**{result.status}**",
        f"exit {result.exit_code}" if result.exit_code is not None else "no exit code",
        f"{result.duration_ms / 1000:.2f} s",
    ]
    if result.peak_memory_kb is not None:
        parts.append(f"peak {result.peak_memory_kb / 1024:.1f} MB")
    if result.limit_hit:
        parts.append(f"limit hit: {result.limit_hit.replace('_', ' ')}")
    if result.truncated:
        parts.append("output truncated")
    head = f"▶️ Run of version {report.version.number} of #{report.session.id}: " + " · ".join(parts)
    if result.message:
        head += f"\n{result.message[:300]}"
    streams = [
        (name, text)
        for name, text in (
            ("compiler", result.compile_output if result.status == "compile_error" else ""),
            ("stdout", result.stdout),
            ("stderr", result.stderr),
        )
        if text.strip()
    ]
    if not streams:
        return (head + "\n(no output)")[:limit]
    # Each block costs its label, two fences (at most a few backticks longer than any run of
    # backticks inside) and newlines; share what is left of the limit between the streams.
    overhead = sum(len(name) + 20 + 2 * _longest_backticks(text) for name, text in streams)
    budget = max(0, limit - len(head) - overhead) // len(streams)
    blocks = [f"{name}:\n{fence(_clip(text, budget), 'text')}" for name, text in streams]
    return "\n".join([head, *blocks])[:limit]


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
