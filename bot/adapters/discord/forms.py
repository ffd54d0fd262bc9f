"""The Run with input… form: a Discord modal that asks for standard input and arguments.

The Run with input… button (``ct:input:12:3``) answers with a modal whose ``custom_id`` is
the same action (``ct:input:12:3``), a paragraph for stdin and a line for the arguments,
both optional, worded by :data:`bot.present.words.RUN_FORM` (Discord draws the submit and
cancel buttons of a modal itself, so that form's ``submit`` and ``close`` are not used here).

discord.py routes a submit only to a modal object it still holds in memory, by its exact
``custom_id``. Like the buttons (:mod:`.buttons`), the form must keep working across a
restart between opening and submitting it, and nothing should pile up per open form; so the
modal is sent stopped (never stored) and its submit is read from the interaction itself
(:func:`submitted`), in the client's ``on_interaction``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import discord
from discord import ui

from bot.present.words import RUN_FORM
from bot.values import Action

__all__ = ["STDIN_LIMIT", "RunForm", "run_form", "submitted"]

Interaction = discord.Interaction[discord.Client]
STDIN_LIMIT = 4000  # characters of a paragraph text input (Discord's most)
_CUSTOM_ID = re.compile(r"ct:(?P<action>input:[0-9]+(?::[0-9]+)?)")
_TITLE, _LABEL, _PLACEHOLDER = 45, 45, 100  # Discord's limits, in characters


@dataclass(frozen=True, slots=True, kw_only=True)
class RunForm:
    """What a submitted form asks for: the action (session, version), stdin and arguments
    as typed (split by :func:`bot.run_options.parse_args`)."""

    action: Action
    stdin: str = ""
    args: str = ""


def run_form(action: Action) -> ui.Modal:
    """The modal for ``action`` (an ``input`` action); stopped, so discord.py keeps no copy."""
    modal = ui.Modal(title=RUN_FORM["title"][:_TITLE], custom_id=f"ct:{action.encode()}")
    stdin: ui.TextInput[Any] = ui.TextInput(
        style=discord.TextStyle.paragraph,
        custom_id="stdin",
        placeholder=RUN_FORM["stdin_placeholder"][:_PLACEHOLDER],
        required=False,
        max_length=STDIN_LIMIT,
    )
    args: ui.TextInput[Any] = ui.TextInput(
        style=discord.TextStyle.short,
        custom_id="args",
        placeholder=RUN_FORM["args_placeholder"][:_PLACEHOLDER],
        required=False,
    )
    modal.add_item(ui.Label(text=RUN_FORM["stdin"][:_LABEL], component=stdin))
    modal.add_item(ui.Label(text=RUN_FORM["args"][:_LABEL], component=args))
    modal.stop()
    return modal


def _values(components: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The text inputs' values by custom id, in labels (type 18) or action rows (type 1)."""
    found: dict[str, str] = {}
    for component in components:
        inner = [component["component"]] if "component" in component else []
        found.update(_values([*inner, *(component.get("components") or [])]))
        if component.get("type") == discord.ComponentType.text_input.value:
            found[str(component.get("custom_id"))] = str(component.get("value") or "")
    return found


def submitted(interaction: Interaction) -> RunForm | None:
    """The Run with input… form this interaction submits, or None for any other."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return None
    data: Mapping[str, Any] = interaction.data or {}
    match = _CUSTOM_ID.fullmatch(str(data.get("custom_id", "")))
    action = Action.decode(match["action"]) if match else None
    if action is None:
        return None
    values = _values(data.get("components") or [])
    return RunForm(action=action, stdin=values.get("stdin", ""), args=values.get("args", ""))
