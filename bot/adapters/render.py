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
from bot.values import Loading, RunReport
from sandbox.toolchains import toolchain_for
from storage import Session, Version

__all__ = [
    "RenderedVersion",
    "Throttle",
    "loading_text",
    "partial",
    "render_run",
    "render_version",
    "run_summary",
    "tests_filename",
    "version_header",
]


class Throttle:
    """Says when a streaming message may be edited again: at most once per ``interval``."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = float("-inf")

    def ready(self) -> bool:
        """True (and the interval starts again) when an edit may happen now."""
        if self.remaining() <= 0:
            self._last = self._clock()
            return True
        return False

    def restart(self) -> None:
        """Count the interval from now (an edit happened outside :meth:`ready`)."""
        self._last = self._clock()

    def remaining(self) -> float:
        """Seconds until the next edit may happen (0 when it may happen now)."""
        return max(0.0, self._last + self.interval - self._clock())


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


_OUTCOMES = {
    "ok": "passed",
    "failed": "failed",
    "compile_error": "did not compile",
    "limit": "was stopped by a limit",
    "unavailable": "could not run",
}


def run_summary(report: RunReport) -> str:
    """One line: what ran, how it ended, exit code, time, peak memory, the limit hit."""
    result = report.result
    what = "Tests" if report.kind == "test" else "Run"
    facts = [f"exit {result.exit_code}" if result.exit_code is not None else "no exit code"]
    facts.append(f"{result.duration_ms / 1000:.2f} s")
    if result.compile_ms:
        facts.append(f"compile {result.compile_ms / 1000:.2f} s")
    if result.peak_memory_kb is not None:
        facts.append(f"peak {result.peak_memory_kb / 1024:.1f} MB")
    if result.limit_hit:
        facts.append(f"limit hit: {result.limit_hit.replace('_', ' ')}")
    if result.truncated:
        facts.append("output truncated")
    outcome = _OUTCOMES.get(result.status, result.status)
    return (
        f"{what} of version {report.version.number} of #{report.session.id} {outcome} · "
        + " · ".join(facts)
    )


def render_run(report: RunReport, *, limit: int) -> str:
    """A run as markdown within ``limit``: the summary, then each output in a code block."""
    result = report.result
    head = run_summary(report) + (f"\n{result.message}" if result.message else "")
    streams = [
        (title, text)
        for title, text in (
            ("compiler", result.compile_output if result.status == "compile_error" else ""),
            ("stdout", result.stdout),
            ("stderr", result.stderr),
        )
        if text.strip()
    ]
    if not streams:
        return (head + "\n(no output)")[:limit]
    room = max(40, (limit - len(head) - 40 * len(streams)) // len(streams))
    blocks = [f"{title}:\n{tail(fence(text, 'text'), room)}" for title, text in streams]
    return "\n".join([head, *blocks])[:limit]


def tests_filename(language: Language) -> str:
    """The file name the sandbox gives a language's tests (``test_snippet.py``, …)."""
    toolchain = toolchain_for(language.name)
    test = toolchain.test if toolchain else None
    return test.file if test else f"tests.{language.extension}"
