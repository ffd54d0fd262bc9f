"""Platform-neutral rendering shared by the chat adapters: versions, partial output, pacing.

Chat platforms cap a message (Slack ~40,000 characters of text but 3,000 per section block;
Discord 2,000). A version whose fenced code does not fit is posted as a file named for its
language (``snippet.py``) with a short preview; fences are never left broken, in partial output
either. Streaming edits are paced by :class:`Throttle` (about one per second per message).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.codeblocks import fence, tail
from bot.languages import Language
from bot.values import Loading
from storage import Session, Version

__all__ = [
    "RenderedVersion",
    "Throttle",
    "loading_text",
    "partial",
    "render_version",
    "version_header",
]


class Throttle:
    """Says when a streaming message may be edited again: at most once per ``interval``."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = float("-inf")

    def ready(self) -> bool:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedVersion:
    text: str  # the message body (markdown with one fenced block, or a preview)
    filename: str | None = None  # set when the code goes as a file
    file_content: str | None = None


def version_header(session: Session, version: Version) -> str:
    return (
        f"Version {version.number} of #{session.id} · {session.language} · {version.model} · "
        f"{version.latency_ms / 1000:.1f} s"
    )


def render_version(
    session: Session,
    version: Version,
    language: Language,
    *,
    limit: int,
    preview_lines: int = 12,
) -> RenderedVersion:
    """The message for a finished version, with the code as a file when it would not fit."""
    header = version_header(session, version)
    note = f"\n{version.note}" if version.note else ""
    text = f"{header}\n{fence(version.code, language.fence)}{note}"
    if len(text) <= limit:
        return RenderedVersion(text=text)
    lines = version.code.splitlines()
    shown = "\n".join(lines[:preview_lines])
    more = (
        f"… {len(lines) - preview_lines} more lines in the file"
        if len(lines) > preview_lines
        else ""
    )
    body = f"{header}\n{fence(shown, language.fence)}\n{more}".rstrip()
    if len(body) + len(note) <= limit:
        body += note
    return RenderedVersion(
        text=body[:limit],
        filename=f"snippet.{language.extension}",
        file_content=version.code,
    )


def partial(text: str, *, limit: int) -> str:
    """Partial model output for a streaming message: the newest part that fits, fences intact.

    A cursor marks the end; after a fence line it goes on a line of its own (glued to a closing
    fence it would turn it into an opening one).
    """
    text = text.rstrip()
    after_fence = text.rsplit("\n", 1)[-1].lstrip().startswith(("```", "~~~"))
    return tail(text + ("\n▌" if after_fence else " ▌"), limit)


def loading_text(event: Loading) -> str:
    """What a turn waiting for its model says, e.g. "qwen-coder is loading; you are #2 in line"."""
    state = "is busy with other requests" if event.busy else "is loading"
    return f"{event.model} {state}; you are #{event.position} in line, no need to resend."
