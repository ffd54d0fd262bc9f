"""Fenced code blocks: finding the snippet in a model's answer, and writing fences that never break.

The model is asked for exactly one fenced block holding the whole snippet. Models sometimes add
a second block (a usage example, a shell command); the longest block is taken as the snippet and
everything else, other blocks included, is kept as the version's note. A fence left open at the
end (the answer was cut off) still yields its code, with ``complete=False``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Extraction", "close_open_fence", "extract_code", "fence"]

# An opening fence: up to three spaces, then ``` or ~~~ (or longer), then an info string.
_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Extraction:
    code: str
    note: str  # the prose around the block, stripped
    info: str  # the block's info string (language tag), possibly empty
    complete: bool  # False when the closing fence never came


@dataclass(frozen=True, slots=True)
class _Block:
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence (len(lines) when unclosed)
    info: str
    closed: bool


def _blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        marker = m["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        info = m["info"].split()[0] if m["info"].strip() else ""
        blocks.append(_Block(start=i, end=j, info=info, closed=j < len(lines)))
        i = j + 1
    return blocks


def extract_code(text: str) -> Extraction | None:
    """The snippet in ``text``, or None when the answer holds no (non-empty) code block."""
    lines = text.splitlines()
    candidates = [b for b in _blocks(lines) if "".join(lines[b.start + 1 : b.end]).strip()]
    if not candidates:
        return None
    best = max(candidates, key=lambda b: sum(len(line) for line in lines[b.start + 1 : b.end]))
    code = "\n".join(lines[best.start + 1 : best.end]).strip("\n")
    rest = lines[: best.start] + lines[best.end + 1 :]
    note = re.sub(r"\n{3,}", "\n\n", "\n".join(rest)).strip()
    return Extraction(code=code, note=note, info=best.info, complete=best.closed)


def fence(code: str, info: str = "") -> str:
    """``code`` in a fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    marker = "`" * max(3, longest + 1)
    return f"{marker}{info}\n{code.rstrip()}\n{marker}"


def close_open_fence(text: str) -> str:
    """``text`` with a closing fence appended if a block is still open (for partial output)."""
    lines = text.splitlines()
    blocks = _blocks(lines)
    if blocks and not blocks[-1].closed:
        marker = _OPEN.match(lines[blocks[-1].start])
        assert marker is not None
        return text.rstrip("\n") + "\n" + marker["fence"]
    return text


def tail(text: str, limit: int) -> str:
    """The end of ``text`` in at most ``limit`` characters, cut at a line, fences intact.

    When the cut falls inside a code block, the block's opening fence is repeated above the
    kept lines; an open block at the end is closed.
    """
    if len(text) <= limit and len(closed := close_open_fence(text)) <= limit:
        return closed
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > limit - 40:
            break
        kept.append(line)
        size += len(line) + 1
    kept.reverse()
    first = len(lines) - len(kept)
    opener = next((lines[b.start] for b in _blocks(lines) if b.start < first <= b.end), None)
    head = ["…", opener] if opener is not None else ["…"]
    return close_open_fence("\n".join(head + kept))
