"""Files people give a session, and how the model and the runs get to see them.

A session's files come from its thread (Slack file shares, Discord attachments) or from
``/attach PATH`` in the terminal. They are stored with the session, replace an earlier file of
the same name, go with every run into the work dir beside the snippet (read-only), and are
described to the model in the *user* part of each turn's prompt: names, sizes and the first
lines of text files, so that the model writes code that reads ``sales.csv`` with its real
columns. They never enter the system prompt (they are user text).

Limits: :data:`MAX_FILES` files of at most :data:`MAX_FILE_BYTES` each and
:data:`MAX_TOTAL_BYTES` together (they all travel with every run, through a sandbox that takes
a few MiB of input). A file over a limit is refused by name with the reason; the others of the
same message are kept.

Discord turns a long paste into an attachment named ``message.txt``; a message made only of
such a file is a turn whose text is the file's (:func:`as_text`), not an attachment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.values import Refusal, Upload
from storage import SessionFile

__all__ = [
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_TOTAL_BYTES",
    "as_text",
    "describe",
    "refusal",
    "safe_name",
    "size_text",
    "text_of",
]

MAX_FILES = 10
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 3 * 1024 * 1024
#: the name Discord gives a message too long to send as text
PASTE_NAMES = frozenset({"message.txt"})
#: how much of a text file the model sees
HEAD_LINES = 5
HEAD_CHARS = 600

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """A name the sandbox accepts for a work-dir file: the base name, odd characters as
    ``_``, no leading dot (``../My Data (1).csv`` → ``My_Data_1_.csv``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip("._-") or "file"
    if len(cleaned) > 100:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[: 99 - len(ext)] + dot + ext) if dot and len(ext) < 12 else cleaned[:100]
    return cleaned


def as_text(text: str, uploads: Sequence[Upload]) -> tuple[str, tuple[Upload, ...]]:
    """The turn's text and its files: a message of only a pasted ``message.txt`` is that
    text."""
    if not text.strip() and len(uploads) == 1 and uploads[0].name in PASTE_NAMES:
        data = uploads[0].data
        if data is not None:
            try:
                return data.decode(), ()
            except UnicodeDecodeError:
                pass
    return text, tuple(uploads)


def text_of(data: bytes) -> str | None:
    """``data`` as text when it is text (UTF-8 without NULs), else None."""
    head = data[:4096]
    if b"\0" in head:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as err:  # cut inside a character at the end of a long file?
        return data[: err.start].decode() if err.start > len(data) - 4 else None


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def describe(files: Sequence[SessionFile]) -> str:
    """The files as the model is told of them, below the request; "" when there are none."""
    if not files:
        return ""
    lines = ["Files in the working directory (the program may read them by these names):"]
    for item in files:
        lines.append(f"- `{item.name}` ({size_text(item.size)})")
        text = text_of(item.data)
        if text is None:
            continue
        head = "\n".join(text.splitlines()[:HEAD_LINES])[:HEAD_CHARS]
        if head.strip():
            lines.append("  First lines:\n  ```\n" + _indent(head) + "\n  ```")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line.replace("```", "'''") for line in text.splitlines())


def refusal(upload: Upload, stored: Sequence[SessionFile]) -> Refusal | None:
    """Why ``upload`` cannot join the session's ``stored`` files, or None when it can (a file
    of the same name is replaced, so it does not count)."""
    others = [item for item in stored if item.name != safe_name(upload.name)]
    if upload.data is None or upload.size > MAX_FILE_BYTES:
        return "too_big"
    if len(others) >= MAX_FILES:
        return "too_many"
    if sum(item.size for item in others) + len(upload.data) > MAX_TOTAL_BYTES:
        return "too_much"
    return None
