"""The words about files: what a session was given, and what a run made.

Kept apart from :mod:`bot.present.words` (which re-exports nothing of it; the presenter and
the terminal call it by name) because files are their own small story: a notice when files
are attached or refused, the ``/files`` list, and the run card's outputs, where images are
marked for inline display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.files import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, size_text
from bot.present.views import Attachment, Notice
from bot.values import Attached, Refusal, RunReport
from sandbox import MAX_ARTIFACT_BYTES, MAX_ARTIFACTS, RunResult
from storage import Session, SessionFile

__all__ = ["attached", "file_list", "made_line", "outputs", "saved"]

Escape = Callable[[str], str]

_REFUSED: dict[Refusal, str] = {
    "too_big": f"over {size_text(MAX_FILE_BYTES)}, the limit for one file",
    "too_many": f"a snippet keeps at most {MAX_FILES} files",
    "too_much": f"the snippet's files would pass {size_text(MAX_TOTAL_BYTES)} together",
}


def _same(text: str) -> str:
    return text


def _names(items: Sequence[SessionFile], escape: Escape) -> str:
    return ", ".join(f"`{escape(item.name)}` ({size_text(item.size)})" for item in items)


def attached(event: Attached, *, escape: Escape = _same) -> Notice:
    """Files stored with a session (seen by the next answers and every run), and any
    refused, each with why."""
    lines = []
    if event.stored:
        lines.append(
            f"📎 Attached {_names(event.stored, escape)} to #{event.session.id}: the next "
            "answers see it, and runs find it in their working directory."
        )
    for name, reason in event.refused:
        lines.append(f"⚠️ `{escape(name)}` was not attached: {_REFUSED[reason]}.")
    summary = f"{len(event.stored)} file(s) attached to #{event.session.id}"
    return Notice(text="\n".join(lines), summary=summary, problem=not event.stored)


def file_list(session: Session, items: Sequence[SessionFile], *, escape: Escape = _same) -> Notice:
    """``/files``: what a session holds."""
    if not items:
        text = (
            f"Snippet #{session.id} has no files. Post one in its thread (or `/attach PATH` "
            "in the terminal); runs find it in their working directory."
        )
        return Notice(text=text, summary=f"No files in #{session.id}")
    total = sum(item.size for item in items)
    rows = "\n".join(f"• `{escape(item.name)}` · {size_text(item.size)}" for item in items)
    text = f"**Files of #{session.id}** ({len(items)}, {size_text(total)})\n{rows}"
    return Notice(text=text, summary=f"{len(items)} file(s) in #{session.id}")


def outputs(report: RunReport) -> tuple[Attachment, ...]:
    """The files a run made, as attachments (pictures shown inline where they can be)."""
    number, sid = report.version.number, report.session.id
    return tuple(
        Attachment(
            filename=item.name.replace("/", "_"),
            data=item.data,
            title=f"{item.name} · made by version {number} of #{sid}",
        )
        for item in report.result.artifacts
    )


def made_line(result: RunResult) -> str:
    """One line about the files a run made ("" when none)."""
    if not result.artifacts and not result.artifacts_left:
        return ""
    line = ""
    if result.artifacts:
        names = ", ".join(f"`{item.name}`" for item in result.artifacts)
        line = f"📎 Made {names}"
    if result.artifacts_left:
        more = (
            f"{result.artifacts_left} more file(s) not kept (a run keeps {MAX_ARTIFACTS} "
            f"files, {size_text(MAX_ARTIFACT_BYTES)} in all)"
        )
        line = f"{line}; {more}" if line else f"📎 {more[0].upper()}{more[1:]}"
    return line + "."


def saved(paths: Sequence[str]) -> str:
    """The terminal's line after saving a run's files."""
    return "Saved " + ", ".join(paths)
