"""How a view becomes a Discord message: Components V2, in markdown Discord reads as meant.

Every message codethread sends is a Components V2 message (``IS_COMPONENTS_V2``, 1 << 15): a
``TextDisplay`` holds 4,000 characters of markdown (a plain message's ``content`` 2,000), so a
version of up to 4,000 characters is one card, and only a longer one goes as a file. Discord
lets a message gain the flag (discord.py sets it on any send or edit whose view has V2 items)
but never lose it, and a V2 message has no ``content``; sending every message this way, the
streaming "Writing …" and the deferred "thinking …" response included, means no edit ever has
to change what kind of message it is.

- The live message of a turn or a run (its status, the answer as it streams, the version, the
  run, the failure) sits in a ``Container`` whose accent shows the outcome: green a passed
  run, red a failed run or turn, grey otherwise. Notices and the request post are bare text.
- A view's file is uploaded with the message and shown where it belongs by a ``File``
  component (``attachment://snippet.py``); buttons follow in action rows of five.
- :func:`markdown`: Discord ends a code block at the first ```` ``` ```` whatever the opening
  fence (CommonMark's longer fence does not hold there), so code or output holding one would
  break out and render as markdown (headings, links, a fake "✅ passed"). Every block is fenced
  with exactly three backticks and each run of three or more inside is broken by zero-width
  spaces; the exact code is one click away (Download). Masked links (``[text](url)``) in what
  the model wrote are escaped, so a link shows where it goes.
"""

from __future__ import annotations

import io
import re
from typing import Any

import discord
from discord import ui

from bot.adapters.discord.buttons import button_rows
from bot.codeblocks import close_open_fence
from bot.present import (
    FailureCard,
    NonCodeAnswer,
    RunCard,
    Status,
    VersionCard,
    View,
    Writing,
)

__all__ = ["TEXT_LIMIT", "markdown", "message"]

TEXT_LIMIT = 4000  # characters of TextDisplay content in one message, all of them together
_CARDS = (Status, Writing, VersionCard, RunCard, FailureCard, NonCodeAnswer)
_MODEL_WRITTEN = (Writing, VersionCard, NonCodeAnswer)  # prose whose links are not ours
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_LANGUAGE = re.compile(r"[\w+\-.#]+")  # what Discord reads as a code block's language
_RUN = re.compile(r"`{3,}")
_MASKED_LINK = re.compile(r"(?<!\\)\[([^\[\]\n]*)\]\(")


def _broken(line: str) -> str:
    """``line`` with every run of three or more backticks broken into pairs."""
    return _RUN.sub(lambda m: "\u200b".join(m[0][i : i + 2] for i in range(0, len(m[0]), 2)), line)


def markdown(text: str, *, links: bool = True) -> str:
    """``text`` as Discord should render it: each code block fenced with three backticks and
    no run of three inside (an unclosed one closed), stray runs outside blocks broken too; with
    ``links=False``, masked links outside code blocks escaped."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            line = _broken(lines[i])
            out.append(line if links else _MASKED_LINK.sub(r"\\[\1](", line))
            i += 1
            continue
        marker = opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        info = (opening["info"].split() or [""])[0]
        out.append("```" + (info if _LANGUAGE.fullmatch(info) else ""))
        out.extend(_broken(line) for line in lines[i + 1 : end])
        out.append("```")
        i = end + 1
    return "\n".join(out)


def _fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` at a line, its last block closed (breaking runs of backticks
    adds characters to text that fitted before)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 8]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return close_open_fence(cut + "\n…")[:limit]


def _accent(view: View) -> discord.Colour:
    if isinstance(view, RunCard):
        return discord.Colour.green() if view.passed else discord.Colour.red()
    if isinstance(view, FailureCard):
        return discord.Colour.red()
    return discord.Colour.greyple()


def message(view: View, *, editing: bool) -> dict[str, Any]:
    """``view`` as keyword arguments of a send (or, ``editing``, of an edit, which also takes
    away the file and buttons of what it replaces)."""
    text = _fit(markdown(view.text, links=not isinstance(view, _MODEL_WRITTEN)))
    parts: list[ui.Item[Any]] = [ui.TextDisplay(text)]
    files = []
    if view.file is not None:
        data = io.BytesIO(view.file.content.encode())
        file = discord.File(data, filename=view.file.filename, description=view.file.title)
        files.append(file)
        parts.append(ui.File(file))
    parts.extend(button_rows(view.actions))
    layout = ui.LayoutView(timeout=None)
    if isinstance(view, _CARDS):
        layout.add_item(ui.Container(*parts, accent_colour=_accent(view)))
    else:
        for part in parts:
            layout.add_item(part)
    # Clicks are dispatched by custom_id to the registered button class; a stopped view is not
    # kept in the client's view store, so nothing piles up per message.
    layout.stop()
    if editing:
        return {"view": layout, "attachments": files}
    return {"view": layout, "files": files} if files else {"view": layout}
