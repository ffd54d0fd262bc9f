"""The difference between two versions of a snippet, as a unified diff.

One function, so that ``codethread snippets diff`` and the chat's ``/diff`` (and the HTTP API's
``diff``, when it comes) show the same text: ``git diff``'s familiar shape, which people read
and ``patch`` applies.
"""

from __future__ import annotations

import difflib

from storage import Version

__all__ = ["unified_diff"]


def unified_diff(session_id: int, old: Version, new: Version, *, context: int = 3) -> str:
    """The unified diff from ``old`` to ``new`` ("" when the code is the same).

    The file names say which versions they are (``#7 v1``, ``#7 v2``). Stored code never
    ends with a newline (the extraction strips it), so a last line gets one, without diff's
    "no newline" marker, which would only be noise on every diff.
    """
    lines = difflib.unified_diff(
        _lines(old.code),
        _lines(new.code),
        fromfile=f"#{session_id} v{old.number}",
        tofile=f"#{session_id} v{new.number}",
        n=context,
    )
    return "".join(lines)


def _lines(code: str) -> list[str]:
    return [line + "\n" for line in code.splitlines()]
