"""The options of a run as people type them: ``[N] [--stdin VALUE] [-- ARG…]``.

One grammar for every surface: the terminal's ``/run`` (where ``--stdin`` names a file the
person running the bot reads), chat's ``/snippets run ID …`` (where it is the text itself),
and the arguments field of the Run with input… form. Arguments are split like a shell's
(``"two words"`` is one); nothing is ever run through a shell.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bot.errors import UserError

__all__ = ["RunOptions", "parse_args", "parse_run"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    number: int | None = None  # the version; None: the latest
    stdin: str | None = None  # the value after --stdin (a path or the text: the surface says)
    args: tuple[str, ...] = ()


def parse_args(text: str) -> tuple[str, ...]:
    """A form's arguments field, split like a shell's."""
    try:
        return tuple(shlex.split(text))
    except ValueError as err:  # "No closing quotation"
        raise UserError(
            f"The arguments could not be read ({err}); quote them like a shell."
        ) from None


def parse_run(text: str, *, usage: str) -> RunOptions:
    """``[N] [--stdin VALUE] [-- ARG…]``; a :class:`UserError` naming ``usage`` otherwise."""
    refused = UserError(f"Usage: {usage}")
    try:
        words = shlex.split(text)
    except ValueError:
        raise refused from None
    args: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, args = words[:at], words[at + 1 :]
    number: int | None = None
    stdin: str | None = None
    while words:
        word = words.pop(0)
        if word == "--stdin" and words and stdin is None:
            stdin = words.pop(0)
        elif word.isdigit() and number is None:
            number = int(word)
        else:
            raise refused
    return RunOptions(number=number, stdin=stdin, args=tuple(args))
