"""Every word of the web page (``bot/web``), once; the templates hold structure only.

The page shows what every other surface shows: version headers, run summaries, button labels
and refusals come from :mod:`bot.present.words` (``version_header``, ``run_summary``,
``look``, ``explain``); this module adds only what a page has and a chat message has not
(headings, form labels, the sign-in page, the words the page's script shows while it waits).
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Mapping

from bot.files import size_text
from bot.present import words
from bot.values import Action, Caller, RunReport
from sandbox import RunResult
from storage import Run, Session, Version

__all__ = [
    "FORM_EXPIRED",
    "LABELS",
    "LINK_REJECTED",
    "LOGIN_ELSEWHERE",
    "NO_BROWSER",
    "SCRIPT",
    "SIGNED_OUT",
    "cannot_listen",
    "delete_confirm",
    "launched",
    "no_sessions",
    "run_facts",
    "run_inputs",
    "run_title",
    "session_line",
    "signed_in",
    "signing_in",
    "stamp",
    "switch_to",
    "version_line",
    "versions_count",
]

_HOW = "Ask the bot for a new one: the View history button under any version, or `codethread web`"
LINK_REJECTED = f"This link has expired or was already used. {_HOW}."
LOGIN_ELSEWHERE = (
    "This sign-in was sent from another site, not from this page, so it was refused. "
    "Open the link the bot gave you again."
)
FORM_EXPIRED = "This page was open too long, or from another sign-in: reload it and try again."
SIGNED_OUT = (
    "You are not signed in, or your sign-in has ended. Ask the bot for a link: the View "
    "history button under any version, or `codethread web` in a terminal."
)

#: headings, labels and buttons, by the name the templates use
LABELS: Mapping[str, str] = {
    "product": "codethread",
    "sign_in": "Sign in",
    "sign_out": "Sign out",
    "continue": "Continue",
    "stay": "Stay signed in as you are",
    "not_found": "Not found",
    "back": "Back to your snippets",
    "your_snippets": "Your snippets",
    "new_snippet": words.CODE_FORM["title"],
    "prompt": words.CODE_FORM["prompt"],
    "prompt_placeholder": words.CODE_FORM["placeholder"],
    "language": words.CODE_FORM["language"],
    "model": words.CODE_FORM["model"],
    "write": words.CODE_FORM["submit"],
    "default": "default",
    "search": "Search",
    "search_placeholder": "Words in a title, request, note or code",
    "clear_search": "Show all",
    "versions": "Versions",
    "request": "Asked",
    "note": "Note",
    "adjust": "Change this snippet",
    "adjust_placeholder": "e.g. read the numbers from standard input instead",
    "send": "Send",
    "compare": "Compare versions",
    "from": "from",
    "to": "to",
    "show_diff": "Show the diff",
    "same_code": "The code is the same in both versions.",
    "runs": "Runs",
    "no_runs": "No runs yet.",
    "stdin": words.RUN_FORM["stdin"],
    "stdin_placeholder": words.RUN_FORM["stdin_placeholder"],
    "args": words.RUN_FORM["args"],
    "args_placeholder": words.RUN_FORM["args_placeholder"],
    "run_with_input": words.RUN_FORM["submit"],
    "stdout": "stdout",
    "stderr": "stderr",
    "compiler": "Compiler",
    "tests": "The tests",
    "no_output": "(no output)",
    "made": "Files it made",
    "no_version": "This snippet has no version yet.",
    "latest": "latest",
    "live": "The answer as it is written",
}

#: what the page's script shows (it holds no words of its own): data attributes of <body>
SCRIPT: Mapping[str, str] = {
    "waiting": "⏳ Sending …",
    "working": "⏳ Working …",
    "lost": "The connection was lost before the answer ended; reload the page to see it.",
    "failed": "That did not work: ",
}


NO_BROWSER = "No browser could be opened here: open the link above in one on this machine."


def launched(url: str) -> str:
    """What ``codethread web`` prints: the link, and how long it works."""
    return (
        f"Your snippets: {url}\n(the link signs you in once, within ten minutes; "
        "`codethread web` again makes a new one. Ctrl-C stops the page.)"
    )


def cannot_listen(host: str, port: int, reason: str | None) -> str:
    """``codethread web`` could not take its port (``reason`` None: it is in use)."""
    if reason is None:
        reason = "the port is in use. Pick another --port, or leave it out for a free one"
    return f"Cannot listen on {host}:{port}: {reason}."


def signed_in(user: str, platform: str) -> str:
    return f"Signed in as {user} ({platform})"


def signing_in(caller: Caller) -> str:
    """The login link's page, while its script posts the link (or for a button press)."""
    return f"This link signs you in as {caller.user} ({caller.platform})."


def switch_to(current: Caller, link: Caller) -> str:
    """The login link's page in a browser signed in as someone else: it asks first."""
    return (
        f"You are signed in as {current.user} ({current.platform}). This link is for "
        f"{link.user} ({link.platform}): continue as {link.user}?"
    )


def stamp(when: float) -> str:
    """A stored time as people read it, in UTC (the page does not know their zone)."""
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def versions_count(count: int) -> str:
    return f"{count} version{'s' if count != 1 else ''}"


def session_line(session: Session) -> str:
    """What the list says of a session, after its title."""
    return f"#{session.id} · {session.language} · {versions_count(session.version_count)}"


def no_sessions(search: str | None) -> str:
    if search:
        return f"None of your snippets mentions “{search}”."
    return "You have no snippets here yet: say above what the code should do."


def version_line(version: Version) -> str:
    """A version in the list: its number and the first line of what was asked."""
    first = version.request.strip().splitlines()[0] if version.request.strip() else ""
    return f"v{version.number} · {first[:70]}"


def delete_confirm(action: Action) -> str:
    """The question a Delete button asks first."""
    confirm = words.look(action).confirm
    return f"{confirm[0]} {confirm[1]}" if confirm else ""


def _result(run: Run) -> RunResult:
    return RunResult(
        status=run.status,
        exit_code=run.exit_code,
        stdout=run.stdout,
        stderr=run.stderr,
        duration_ms=run.duration_ms,
        peak_memory_kb=run.peak_memory_kb,
        limit_hit=run.limit_hit,
        compile_output=run.compile_output,
    )


def run_title(run: Run, session: Session, version: Version) -> str:
    """The run's summary line, as the chat surfaces word it ("Run of version 2 of #7 passed")."""
    report = RunReport(session=session, version=version, result=_result(run), kind=run.kind)
    return words.run_summary(report)


def run_facts(run: Run) -> str:
    """Exit code, time, memory and the limit hit, in one line; and when it ran."""
    facts = [f"exit {run.exit_code}" if run.exit_code is not None else "no exit code"]
    facts.append(f"{run.duration_ms / 1000:.2f} s")
    if run.peak_memory_kb is not None:
        facts.append(f"peak {run.peak_memory_kb / 1024:.1f} MB")
    if run.limit_hit:
        facts.append(f"limit hit: {run.limit_hit.replace('_', ' ')}")
    facts.append(stamp(run.created_at))
    return " · ".join(facts)


def run_inputs(run: Run) -> str:
    """What the run was given ("" when nothing)."""
    given = []
    if run.args:
        given.append("arguments " + " ".join(shlex.quote(arg) for arg in run.args)[:200])
    if run.stdin:
        given.append(f"{size_text(len(run.stdin.encode()))} on stdin")
    return "With " + " and ".join(given) if given else ""
