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
- A view's files (:attr:`~bot.present.View.files`: the snippet or tests too long for a
  message, then the files a run made) are uploaded with the message and shown inside the
  card: pictures (a plot) in a ``MediaGallery``, every other file as a ``File`` component,
  each by ``attachment://<name>``; buttons follow in action rows of five. An edit uploads the
  files of the view it shows and drops those of the message it replaces. Names are made
  safe for ``attachment://`` (:func:`bot.files.safe_name`) and kept apart when two clash.
  Discord takes at most :data:`MAX_FILES` files and :data:`MAX_UPLOAD_BYTES` in one message
  (a server without boosts); the sandbox keeps a run's files well within that (8 files,
  8 MiB), and any file past it is left out rather than the whole message refused.
- :func:`markdown`: Discord ends a code block at the first ```` ``` ```` whatever the opening
  fence (CommonMark's longer fence does not hold there), so code or output holding one would
  break out and render as markdown (headings, links, a fake "✅ passed"). Every block is fenced
  with exactly three backticks and each run of three or more inside is broken by zero-width
  spaces; the exact code is one click away (Download). Masked links (``[text](url)``) in what
  the model wrote are escaped, so a link shows where it goes.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from typing import Any

import discord
from discord import ui

from bot.adapters.discord.buttons import button_rows
from bot.codeblocks import close_open_fence
from bot.files import safe_name
from bot.present import (
    Attachment,
    FailureCard,
    NonCodeAnswer,
    RunCard,
    Status,
    VersionCard,
    View,
    Writing,
)

__all__ = ["MAX_FILES", "MAX_UPLOAD_BYTES", "TEXT_LIMIT", "markdown", "message"]

log = logging.getLogger("codethread.discord")

TEXT_LIMIT = 4000  # characters of TextDisplay content in one message, all of them together
MAX_FILES = 10  # attachments in one message
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # all of a message's attachments, without server boosts
_DESCRIPTION = 256  # characters of a media gallery item's description
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


def _distinct(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2.ext``, ``name-3.ext`` … when it is taken."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    found, n = name, 2
    while found in taken:
        found, n = f"{stem}-{n}{dot}{ext}", n + 1
    return found


def _uploads(attachments: Sequence[Attachment]) -> list[tuple[Attachment, discord.File]]:
    """The files to upload for ``attachments``: within Discord's limits, under names that are
    safe in ``attachment://`` and distinct."""
    out: list[tuple[Attachment, discord.File]] = []
    names: set[str] = set()
    total = 0
    for attachment in attachments:
        data = attachment.payload
        if len(out) == MAX_FILES or total + len(data) > MAX_UPLOAD_BYTES:
            log.warning("left %s out of a message: past Discord's limits", attachment.filename)
            continue
        total += len(data)
        name = _distinct(safe_name(attachment.filename), names)
        names.add(name)
        file = discord.File(io.BytesIO(data), filename=name, description=attachment.title)
        out.append((attachment, file))
    return out


def _shown(uploads: list[tuple[Attachment, discord.File]]) -> list[ui.Item[Any]]:
    """Where the files show in the card: a ``File`` component each, pictures together in one
    gallery at the place of the first."""
    parts: list[ui.Item[Any]] = []
    gallery: ui.MediaGallery[Any] | None = None
    for attachment, file in uploads:
        if not attachment.image:
            parts.append(ui.File(file))
            continue
        item = discord.MediaGalleryItem(file, description=attachment.title[:_DESCRIPTION])
        if gallery is None:
            gallery = ui.MediaGallery(item)
            parts.append(gallery)
        else:
            gallery.append_item(item)
    return parts


def message(view: View, *, editing: bool) -> dict[str, Any]:
    """``view`` as keyword arguments of a send (or, ``editing``, of an edit, which also takes
    away the files and buttons of what it replaces)."""
    text = _fit(markdown(view.text, links=not isinstance(view, _MODEL_WRITTEN)))
    uploads = _uploads(view.files)
    files = [file for _, file in uploads]
    parts: list[ui.Item[Any]] = [ui.TextDisplay(text), *_shown(uploads)]
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
