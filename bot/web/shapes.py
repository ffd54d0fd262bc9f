"""What each page shows, gathered from the core and shaped for its template.

The templates get plain values (strings, numbers, lists of small dicts) and Markup only for
Pygments' highlighting; every word is the presenter's (:mod:`bot.present.web`, and
:mod:`bot.present.words` for what chat shows too: version headers, run summaries, button
labels, refusals). Which buttons a version has is the core's decision
(:meth:`RunService.version_actions`), as on every surface; Fix is offered under the latest
run of the latest version when the code itself failed, as the chat run card offers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from bot.errors import UserError
from bot.present import web as say
from bot.present import words
from bot.present.views import IMAGE_SUFFIXES
from bot.values import Action
from bot.web import render
from bot.web.site import Site, Visitor
from sandbox import FIXABLE
from storage import Run, Session, Version

__all__ = ["artifact_url", "index_values", "session_values"]

RUNS_SHOWN = 20  # the newest runs of a session on its page
LISTED = 100  # sessions on the front page (search finds older ones)


def artifact_url(session_id: int, run_id: int, name: str) -> str:
    """Where the API serves a file a run made (the page's cookie authorises it)."""
    return f"/api/sessions/{session_id}/runs/{run_id}/artifacts/{quote(name, safe='')}"


def _common(visitor: Visitor, title: str, problems: list[str]) -> dict[str, Any]:
    """What every signed-in page has; ``problems`` is shown as it is when the page renders
    (what goes wrong while it is gathered is added to it)."""
    caller = visitor.caller
    return {
        "title": title,
        "csrf": visitor.csrf,
        "who": say.signed_in(caller.user, caller.platform),
        "problems": problems,
    }


async def index_values(
    site: Site, visitor: Visitor, *, search: str | None = None, problems: Sequence[str] = ()
) -> dict[str, Any]:
    """``/``: the caller's sessions (matching ``search``), and the new-session box with the
    languages and the models a chat user may choose from."""
    service = site.app.service
    sessions = await service.list_sessions(visitor.caller, limit=LISTED, search=search)
    default_language = service.language(None).name
    catalog = service.engines.catalog
    return {
        **_common(visitor, say.LABELS["your_snippets"], list(problems)),
        "search": search or "",
        "sessions": [
            {
                "url": f"/s/{s.id}",
                "title": s.title,
                "line": say.session_line(s),
                "stamp": say.stamp(s.updated_at),
            }
            for s in sessions
        ],
        "empty": say.no_sessions(search),
        "languages": [
            {"value": lang.name, "label": lang.label, "checked": lang.name == default_language}
            for lang in service.languages
        ],
        "models": [
            {
                "value": status.spec.name,
                "label": status.spec.name,
                "description": status.spec.description,
                "checked": status.default,
            }
            for status in service.models()
            if status.default or status.spec.name in catalog
        ],
        "stream_url": "/api/sessions",
    }


async def session_values(
    site: Site,
    visitor: Visitor,
    session: Session,
    number: int | None,
    *,
    compare: tuple[int | None, int | None] | None = None,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """``/s/{id}``: version ``number`` (the latest when None) of ``session``, the list of
    versions, the buttons, the runs; with ``compare`` (from, to), their diff as well.
    ``UserError`` for a version the session does not have."""
    app = site.app
    language = app.service.language(session.language)
    versions = await app.store.list_versions(session.id)
    if number is not None and not 1 <= number <= len(versions):
        raise UserError(f"Session {session.id} has no version {number}.")
    version = versions[(number or len(versions)) - 1] if versions else None
    problems = list(problems)
    values: dict[str, Any] = {
        **_common(visitor, f"#{session.id} · {session.title}", problems),
        "session": {"id": session.id, "title": session.title, "language": language.label},
        "versions": [
            {
                "number": v.number,
                "url": f"/s/{session.id}?v={v.number}",
                "line": say.version_line(v),
                "stamp": say.stamp(v.created_at),
                "current": version is not None and v.number == version.number,
            }
            for v in reversed(versions)
        ],
        "version": None,
        "stream_url": f"/api/sessions/{session.id}/turns",
        "turn_url": f"/s/{session.id}/turn",
        "act_url": f"/s/{session.id}/act",
        "failure": await _failure(site, session),
        "runs": [],
        "diff": None,
    }
    if version is None:
        return values
    values["version"] = {
        "number": version.number,
        "header": words.version_header(session, version),
        "request": version.request,
        "note": version.note,
        "code": await asyncio.to_thread(render.highlight, version.code, language.fence),
        "buttons": _buttons(app.runs.version_actions(session, version), session),
    }
    values["runs"] = await _runs(site, session, versions, language.fence)
    old, new = compare or (None, None)
    shown_new = new or version.number
    values["compare"] = {
        "url": f"/s/{session.id}/diff",
        "numbers": [v.number for v in versions],
        "old": old or max(1, shown_new - 1),
        "new": shown_new,
    }
    if compare is not None:
        try:
            comparison = await app.service.diff(session.id, visitor.caller, old, new, owned=True)
        except UserError as err:
            problems.append(words.explain(err))
        else:
            values["compare"].update(old=comparison.old.number, new=comparison.new.number)
            values["diff"] = {
                "title": words.diff_card(comparison, limit=10**9).summary,
                "html": await asyncio.to_thread(render.highlight_diff, comparison.diff)
                if comparison.diff
                else None,
            }
    return values


def _button(action: Action, session: Session) -> dict[str, Any]:
    look = words.look(action)
    button: dict[str, Any] = {
        "kind": action.kind,
        "label": look.label,
        "primary": look.style == "primary",
        "danger": look.style == "danger",
        "code": action.encode(),
        "confirm": say.delete_confirm(action) if action.kind == "delete" else "",
        "url": "",
    }
    number = action.number
    if action.kind == "diff" and number:
        button["url"] = f"/s/{session.id}/diff?from={number - 1}&to={number}"
    elif action.kind == "download":
        button["url"] = f"/s/{session.id}/download" + (f"?v={number}" if number else "")
    return button


def _buttons(actions: Sequence[Action], session: Session) -> list[dict[str, Any]]:
    """The version's buttons, but View history: this page is the history."""
    return [_button(action, session) for action in actions if action.kind != "history"]


async def _failure(site: Site, session: Session) -> dict[str, Any] | None:
    """The session's last request when its answer failed (a failure is cleared by the next
    version), with Retry."""
    failure = await site.app.store.latest_failure(session.id)
    if failure is None:
        return None
    retry = Action(kind="retry", session_id=session.id, failure=failure.id)
    return {
        "message": failure.message,
        "request": failure.request,
        "retry": _button(retry, session),
    }


async def _runs(
    site: Site, session: Session, versions: Sequence[Version], fence: str
) -> list[dict[str, Any]]:
    by_id = {v.id: v for v in versions}
    latest = versions[-1]
    runs = await site.app.store.list_runs(session.id, limit=RUNS_SHOWN)
    newest_of_latest = next((run.id for run in runs if run.version_id == latest.id), None)
    shaped = []
    for run in runs:
        version = by_id.get(run.version_id)
        if version is None:
            continue
        fix = None
        if run.id == newest_of_latest and run.status in FIXABLE:
            fix = _button(Action(kind="fix", session_id=session.id, number=latest.number), session)
        shaped.append(await _run(run, session, version, fence, fix))
    return shaped


async def _run(
    run: Run, session: Session, version: Version, fence: str, fix: dict[str, Any] | None
) -> dict[str, Any]:
    compiler = run.compile_output if run.status == "compile_error" else ""
    labels = say.LABELS
    return {
        "id": run.id,
        "title": say.run_title(run, session, version),
        "facts": say.run_facts(run),
        "inputs": say.run_inputs(run),
        "passed": run.status == "ok",
        "outputs": [
            (labels[key], text)
            for key, text in (
                ("compiler", compiler),
                ("stdout", run.stdout),
                ("stderr", run.stderr),
            )
            if text.strip()
        ],
        "tests": await asyncio.to_thread(render.highlight, run.tests, fence) if run.tests else None,
        "artifacts": [
            {
                "name": name,
                "url": artifact_url(session.id, run.id, name),
                "image": name.lower().endswith(IMAGE_SUFFIXES),
            }
            for name in run.artifacts
        ],
        "fix": fix,
    }
