"""The HTTP API's JSON and words: what :mod:`bot.api` answers, shaped from the core's values.

The presenter is the only code that matches on the core's events, so the JSON of an outcome
(a version, an answer without code, a failure), of a run and of the views a streamed turn
shows lives here, not in the API's handlers; the handlers only pick the HTTP status. The
API's own refusals (a missing token, a body that is not JSON) are worded here too, in the
same voice as :mod:`bot.present.words`; the core's refusals keep their own words
(:func:`words.explain`), so an API client reads what a chat user would.

Times are ISO 8601 in UTC (``2026-05-09T07:35:25Z``); URLs are paths on the same server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bot.files import size_text
from bot.present import attachments, words
from bot.present.views import (
    Closed,
    FailureCard,
    NonCodeAnswer,
    Notice,
    RequestPost,
    RunCard,
    Status,
    VersionCard,
    View,
    Writing,
)
from bot.values import Action, Attached, Comparison, Done, Failed, NonCode, RunReport
from storage import Run, Session, SessionFile, Version

__all__ = [
    "Answer",
    "Json",
    "action_json",
    "answer",
    "artifact_url",
    "attach_refusal",
    "comparison_json",
    "file_json",
    "report_json",
    "run_json",
    "session_json",
    "version_json",
    "view_json",
]

Json = dict[str, Any]

# -- the API's own words --------------------------------------------------------------------

TOKEN_HELP = "make one with `codethread tokens create --user NAME`"
NO_TOKEN = f"Send an API token as `Authorization: Bearer <token>` ({TOKEN_HELP})."
BAD_TOKEN = f"That API token is unknown, expired or revoked; {TOKEN_HELP}."
CSRF = "This request needs the page's X-CSRF-Token header; reload the page and try again."
TEST_INPUT = 'Tests take no "stdin" or "args"; leave them out, or send "kind": "run".'
NOT_JSON = "The body must be a JSON object (Content-Type: application/json)."


def no_route(method: str, path: str) -> str:
    return f"No API route {method} {path}; GET /api/openapi.json lists them."


def wrong_method(method: str, path: str, allowed: Sequence[str]) -> str:
    return f"{path} does not take {method}; it takes {', '.join(sorted(allowed))}."


def too_large(limit: int) -> str:
    return f"The request body is over {size_text(limit)}, the limit for this call."


def missing(field: str) -> str:
    return f"The body needs the field {field!r}."


def wrong_type(field: str, kind: str) -> str:
    return f"The field {field!r} must be {kind}."


def unknown_fields(names: Sequence[str], allowed: Sequence[str]) -> str:
    extra = ", ".join(repr(n) for n in sorted(names))
    return f"Unknown field(s) {extra}; this call takes {', '.join(repr(a) for a in allowed)}."


def bad_query(name: str, kind: str) -> str:
    return f"The query parameter {name!r} must be {kind}."


def no_run(session_id: int, run_id: int) -> str:
    return f"Snippet #{session_id} has no run {run_id}; GET its runs to list them."


def no_artifact(run_id: int, name: str) -> str:
    return f"Run {run_id} made no file {name!r}."


# -- values ---------------------------------------------------------------------------------


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_json(session: Session) -> Json:
    return {
        "id": session.id,
        "title": session.title,
        "language": session.language,
        "model": session.model,
        "owner": session.owner,
        "versions": session.version_count,
        "created_at": _when(session.created_at),
        "updated_at": _when(session.updated_at),
        "url": f"/api/sessions/{session.id}",
    }


def version_json(version: Version) -> Json:
    return {
        "number": version.number,
        "code": version.code,
        "note": version.note,
        "request": version.request,
        "model": version.model,
        "latency_ms": version.latency_ms,
        "prompt_tokens": version.prompt_tokens,
        "completion_tokens": version.completion_tokens,
        "created_at": _when(version.created_at),
    }


def version_summary(version: Version) -> Json:
    """A version in a session's history: what was asked, not the code."""
    return {
        "number": version.number,
        "request": version.request,
        "model": version.model,
        "created_at": _when(version.created_at),
    }


def file_json(item: SessionFile) -> Json:
    return {"name": item.name, "size": item.size, "created_at": _when(item.created_at)}


def comparison_json(comparison: Comparison) -> Json:
    return {"from": comparison.old.number, "to": comparison.new.number, "diff": comparison.diff}


def action_json(action: Action) -> Json:
    body: Json = {"kind": action.kind, "label": words.look(action).label}
    body["session"] = action.session_id
    if action.number is not None:
        body["version"] = action.number
    if action.failure is not None:
        body["failure"] = action.failure
    return body


def artifact_url(session_id: int, run_id: int, name: str) -> str:
    return f"/api/sessions/{session_id}/runs/{run_id}/artifacts/{quote(name, safe='/')}"


def _artifacts(session_id: int, run_id: int | None, names: Sequence[str]) -> list[Json]:
    return [
        {"name": name, "url": artifact_url(session_id, run_id, name) if run_id else None}
        for name in names
    ]


def run_json(run: Run, session_id: int) -> Json:
    """A stored run, with its files' names and where to download them."""
    return {
        "id": run.id,
        "version": run.version_number,
        "kind": run.kind,
        "outcome": run.status,
        "exit_code": run.exit_code,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "compile_output": run.compile_output,
        "duration_ms": run.duration_ms,
        "peak_memory_kb": run.peak_memory_kb,
        "limit_hit": run.limit_hit,
        "stdin": run.stdin,
        "args": list(run.args),
        "tests": run.tests,
        "created_at": _when(run.created_at),
        "artifacts": _artifacts(session_id, run.id, run.artifacts),
    }


def report_json(report: RunReport, run_id: int | None) -> Json:
    """A run that just ended (``run_id``: the row it was stored as, for its files' URLs)."""
    result = report.result
    return {
        "id": run_id,
        "version": report.version.number,
        "kind": report.kind,
        "outcome": result.status,
        "summary": words.run_summary(report),
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "compile_output": result.compile_output,
        "duration_ms": result.duration_ms,
        "peak_memory_kb": result.peak_memory_kb,
        "limit_hit": result.limit_hit,
        "truncated": result.truncated,
        "message": result.message,
        "stdin": report.stdin,
        "args": list(report.args),
        "tests": report.tests,
        "artifacts": _artifacts(
            report.session.id, run_id, [item.name for item in result.artifacts]
        ),
        "artifacts_left": result.artifacts_left,
        "actions": [action_json(a) for a in report.actions],
    }


def attach_refusal(event: Attached) -> str | None:
    """Why a file was not stored (the words chat users read), or None when it was."""
    if event.stored or not event.refused:
        return None
    return attachments.attached(event).text.removeprefix("⚠️ ")


# -- outcomes of a turn ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A turn's outcome as the API answers it: the body, and whether the turn failed (the
    handler then answers with an error status; the body still names the session)."""

    body: Json
    failed: bool = False


def answer(outcome: Done | NonCode | Failed | RunReport) -> Answer:
    """The object a create, turn or revert call returns (and a stream's ``done`` carries)."""
    match outcome:
        case Done(session=session, version=version, complete=complete):
            body: Json = {"session": session_json(session), "version": version_json(version)}
            if not complete:
                body["complete"] = False
            return Answer(body=body)
        case NonCode(session=session, text=text, language=language):
            body = {"session": session_json(session), "version": None, "answer": text}
            if language:
                body["answer_language"] = language
            return Answer(body=body)
        case Failed(session=session, message=message, failure=failure):
            body = {"error": message, "session": session_json(session), "failure": failure}
            return Answer(body=body, failed=True)
        case RunReport():
            return Answer(body={"run": report_json(outcome, None)})


# -- views, for a streamed turn -------------------------------------------------------------

_KINDS: tuple[tuple[type[View], str], ...] = (
    (Status, "status"),
    (Writing, "writing"),
    (VersionCard, "version"),
    (RunCard, "run"),
    (NonCodeAnswer, "noncode"),
    (FailureCard, "failure"),
    (Closed, "closed"),
    (RequestPost, "request"),
    (Notice, "notice"),
)


def view_kind(view: View) -> str:
    """The SSE event name of a view: what it is (a status line, the version, a failure)."""
    return next((name for cls, name in _KINDS if isinstance(view, cls)), "view")


def view_json(view: View, *, message: int, op: str) -> Json:
    """A view as one SSE event's data: which message (``message``, a number within the
    stream) and what happens to it (``op``: post, edit, tell), its markdown and actions."""
    body: Json = {
        "message": message,
        "op": op,
        "text": view.text,
        "summary": view.summary,
        "actions": [action_json(a) for a in view.actions],
    }
    if view.file is not None:
        body["file"] = {"filename": view.file.filename, "title": view.file.title}
    if view.outputs:
        body["outputs"] = [item.filename for item in view.outputs]
    if isinstance(view, VersionCard):
        body.update(header=view.header, code=view.code, language=view.fence, note=view.note)
    elif isinstance(view, RunCard):
        body.update(passed=view.passed, session=view.session_id, version=view.number)
    return body
