"""Every user-facing word of codethread's chat surfaces, once.

Each function turns core values into a :mod:`bot.present.views` value whose markdown fits the
surface's ``limit``. Chat platforms cap a message (Slack ~4,000 characters is its advice,
Discord 2,000); a version whose fenced code does not fit goes as a file named for its language
(``snippet.py``) with a short preview; fences are never left broken, in partial output either.
Text that people wrote passes through the surface's ``escape`` before it joins markup.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence

from bot.codeblocks import close_open_fence, fence, tail
from bot.errors import UserError
from bot.languages import Language
from bot.present import attachments as files
from bot.present.views import (
    ActionLook,
    Attachment,
    Closed,
    FailureCard,
    NonCodeAnswer,
    Notice,
    RequestPost,
    RunCard,
    Status,
    VersionCard,
    Writing,
)
from bot.values import Action, Comparison, Failed, Loading, RunReport
from engines import EngineError
from sandbox.toolchains import toolchain_for
from storage import Session, Version

__all__ = [
    "CODE_FORM",
    "COMMAND_HELP",
    "CONSOLE",
    "HELP",
    "MENTION_HELP",
    "NAME_A_MODEL",
    "RUN_FORM",
    "SNIPPETS_HELP",
    "SNIPPET_NUMBER",
    "SUGGESTIONS_TITLE",
    "PlatformRefused",
    "closed",
    "commands",
    "deleted",
    "diff_card",
    "download",
    "explain",
    "failure",
    "history_link",
    "interrupted",
    "loading",
    "look",
    "noncode",
    "partial",
    "problem",
    "repair_summary",
    "request_post",
    "resumed",
    "run_card",
    "run_summary",
    "sandbox_queue",
    "shown",
    "snippet_list",
    "suggestions",
    "tests_filename",
    "version_card",
    "version_header",
    "waiting",
    "writing",
    "writing_tests",
]

Escape = Callable[[str], str]


def _same(text: str) -> str:
    return text


#: the descriptions a platform shows for the slash commands and their options
COMMAND_HELP = {
    "code": "Write code in a new thread; reply there to adjust it.",
    "code.prompt": "What the code should do",
    "code.language": "Programming language (default: the bot's default)",
    "code.model": "Model to use (default: the bot's default)",
    "snippets": "Your snippets (answers only you can see)",
    "snippets.list": "List your snippets in this server.",
    "snippets.show": "Show a version of one of your snippets.",
    "snippets.run": "Run a version of one of your snippets.",
    "snippets.delete": "Delete one of your snippets and its thread's session.",
    "snippets.search": "Find your snippets by their title, requests, notes or code.",
    "snippets.diff": "What changed between two versions (default: the last two).",
    "snippets.files": "The files a snippet was given (post files in its thread to add).",
    "run.stdin": "Text the program reads on standard input",
    "run.args": "Command-line arguments, quoted like a shell",
    "search.text": "Words in the title or a request",
    "diff.old": "From this version (default: the one before)",
    "diff.new": "To this version (default: the latest)",
    "id": "Snippet id (from /snippets list)",
    "version": "Version number (default: latest)",
}
#: what the terminal says that is not a view of the core's
CONSOLE = {
    "resuming": "Resuming session {id}: {title}",
    "new": "The next message starts a new snippet.",
    "unknown": "Unknown command {name}. {help}",
    "no_snippet": "No snippet yet: type what the code should do first.",
    "usage": "Usage: {usage}",
    "cancelled": "(cancelled; the next line is a new request)",
    "confirm_delete": "Delete session {id} ({title}) and all its versions?",
    "kept": "Kept it.",
    "unreadable": "Cannot read {path}: {err}",
    "leave": "Press Ctrl-C again, or Ctrl-D, or type /quit, to leave.",
    "fixed": "A session's language and model are fixed: --language and --model are ignored "
    "with --session.",
    "banner": "codethread · {model} · type what the code should do; Esc-Enter for a new line, "
    "/help for commands",
}
SNIPPETS_HELP = (
    "`/snippets` lists your snippets here · `/snippets search TEXT` · `/snippets show ID [N]` · "
    "`/snippets diff ID [A] [B]` · `/snippets run ID [N] [--stdin TEXT] [-- ARG…]` · "
    "`/snippets files ID` · `/snippets delete ID`"
)
MENTION_HELP = (
    "Tell me what the code should do, e.g. `@codethread python parse a CSV and sum column 3`, "
    "or use `/code` for a form."
)
#: what a new assistant thread (Slack's app pane) offers to start from: its title, and by
#: language a prompt's label and the message it sends
SUGGESTIONS_TITLE = "Say what the code should do, or start from one of these:"
_SUGGESTIONS = {
    "python": ("Python: sum a CSV column", "python read data.csv and print the sum of column 3"),
    "javascript": ("JavaScript: debounce", "javascript a debounce function with a cancel method"),
    "bash": ("Bash: biggest files", "bash list the ten biggest files under this directory"),
    "go": ("Go: count words", "go count the words on standard input, most frequent first"),
    "rust": ("Rust: parse a date", "rust parse an ISO 8601 date and print its weekday"),
    "c": ("C: reverse lines", "c print the lines of standard input in reverse order"),
}


def suggestions(languages: Sequence[str], *, most: int = 4) -> list[tuple[str, str]]:
    """A few prompts to start from, one for each of the first offered ``languages`` that has
    one (Slack shows at most four)."""
    return [_SUGGESTIONS[name] for name in languages if name in _SUGGESTIONS][:most]


SNIPPET_NUMBER = f"Give a snippet number, e.g. `/snippets show 12`. {SNIPPETS_HELP}"
NAME_A_MODEL = "Name a model after `model:`, e.g. `model:gpt-6.1-terra`."
#: the form behind a bare ``/code`` (Slack's modal): its title, buttons and fields
CODE_FORM = {
    "title": "New snippet",
    "submit": "Write it",
    "close": "Cancel",
    "language": "Language",
    "model": "Model",
    "prompt": "What should the code do?",
    "placeholder": "e.g. parse a CSV file and sum the third column",
}
#: the form behind Run with input… (Slack's and Discord's modal)
RUN_FORM = {
    "title": "Run with input",
    "submit": "Run",
    "close": "Cancel",
    "stdin": "Standard input",
    "stdin_placeholder": "What the program reads from stdin (optional)",
    "args": "Arguments",
    "args_placeholder": "e.g. data.csv --verbose (quoted like a shell)",
}
HELP = """\
Type what the code should do; each later line changes the current version.
  /new                start another snippet        /snippets       list yours
  /show [N]           a version (default latest)   /delete         delete this snippet
  /run [N] [--stdin FILE] [-- ARG…]  run it in the sandbox, with input and arguments
  /test               model-written unit tests
  /fix                next version from a failure  /repair         test and fix until it passes
  /diff [A] [B]       what changed (last two)      /revert N       back to version N
  /attach PATH        give the snippet a file      /files          its files
  /retry              send a failed request again  /help, /quit
Esc-Enter: a new line · Ctrl-C: cancel the answer · Ctrl-C twice or Ctrl-D: leave"""


# -- problems --------------------------------------------------------------------------------


class PlatformRefused(Exception):
    """A platform refused a call; surfaces raise it with the platform's reason, and
    :func:`explain` words it. ``reason`` is one of :data:`_REFUSALS`' keys (else generic)."""

    def __init__(self, reason: str, detail: str = "", *, retry_after: float | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


_REFUSALS = {
    "not_in_channel": "I'm not a member of this channel: invite me with `/invite @codethread`, "
    "then try again.",
    "channel_not_found": "I can't post in this conversation. Use `/code` in a channel I'm a "
    "member of (invite me with `/invite @codethread`).",
    "is_archived": "This channel is archived, so I can't post in it.",
    "restricted_action": "This workspace does not let me post here.",
    "gone": "That message or channel no longer exists.",
    "dms_off": "I don't take requests in direct messages; use `/code` in a server.",
    "not_a_text_channel": "Use `/code` in a text channel: I open a thread there for the snippet.",
    "member_cannot_start": "You need the Create Public Threads and Send Messages in Threads "
    "permissions here to start a snippet; ask an admin, or use `/code` in another channel.",
    "member_cannot_post": "You can't send messages in threads here, so I won't post for you.",
    "other_session": "That button belongs to a snippet in another thread; use it there.",
}


def explain(error: BaseException) -> str:
    """The one-line message a person sees for ``error`` (the one place errors become words)."""
    if isinstance(error, UserError | EngineError):
        return str(error)
    if isinstance(error, PlatformRefused):
        if error.reason in _REFUSALS:
            return _REFUSALS[error.reason]
        if error.reason == "download_failed":
            return (
                f"I couldn't download `{error.detail}` from the chat platform, so nothing of "
                "that message was kept; post it again."
            )
        if error.reason == "rate_limited":
            wait = f"; try again in {error.retry_after:.0f} s" if error.retry_after else ""
            return f"The chat platform is rate-limiting me{wait}."
        if error.reason == "missing_permission":
            return (
                f"I'm missing a permission here ({error.detail or 'Forbidden'}). Ask an admin "
                "to grant it, or use `/code` in another channel."
            )
        return f"The chat platform refused my request ({error.detail or error.reason})."
    return "Something went wrong on my side; it has been logged. Please try again."


def problem(error: BaseException, *, request: str = "", limit: int = 2000) -> Notice:
    """``error`` for the person who acted; with ``request``, quoted back to send again."""
    text = explain(error)
    if request:
        room = limit - len(text) - 60
        text += "\nYour request, to send again:\n" + fence(request[: max(room, 0)])
    return Notice(text=text[:limit], summary=explain(error)[:150], problem=True)


def resumed(*, answer: bool = True) -> Status:
    """The earlier message of a turn (``answer``) or a button's work that is done again
    after a restart."""
    again = "answering again" if answer else "doing it again"
    text = f"⚠️ _Interrupted by a restart — {again} below._"
    return Status(text=text, summary=f"Interrupted by a restart; {again}")


def interrupted(*, durable: bool = False) -> Status:
    """A turn cut short (a shutdown, a cancel); a durable one is answered again later."""
    if durable:
        text = "⚠️ This answer was interrupted by a restart; it is answered again when I'm back."
    else:
        text = "⚠️ This answer was interrupted; send your message again to get it."
    return Status(text=text, summary=text)


# -- a turn ----------------------------------------------------------------------------------


def waiting(position: int) -> Status:
    earlier = f"{position} earlier request{'s' if position != 1 else ''}"
    text = f"⏳ Waiting for {earlier} in this thread …"
    return Status(text=text, summary=text)


def loading(event: Loading) -> Status:
    """A turn waiting for its model, e.g. "qwen-coder is loading; you are #2 in line"."""
    state = "is busy with other requests" if event.busy else "is loading"
    text = f"⏳ {event.model} {state}; you are #{event.position} in line, no need to resend."
    return Status(text=text, summary=text)


def partial(text: str, *, limit: int) -> str:
    """Partial model output for a streaming message: the newest part that fits, fences intact.

    A cursor marks the end; after a fence line it goes on a line of its own (glued to a closing
    fence it would turn it into an opening one).
    """
    text = text.rstrip()
    after_fence = text.rsplit("\n", 1)[-1].lstrip().startswith(("```", "~~~"))
    return tail(text + ("\n▌" if after_fence else " ▌"), limit)


def writing(number: int, model: str, text: str, *, limit: int) -> Writing:
    head = f"✏️ Writing version {number} with `{model}` …"
    pending = not text.strip()
    body = "…" if pending else partial(text, limit=limit - len(head) - 2)
    return Writing(text=f"{head}\n\n{body}", summary=f"Writing version {number} …", pending=pending)


def version_header(session: Session, version: Version) -> str:
    return (
        f"Version {version.number} of #{session.id} · {session.language} · {version.model} · "
        f"{version.latency_ms / 1000:.1f} s"
    )


def version_card(
    session: Session,
    version: Version,
    language: Language,
    *,
    actions: tuple[Action, ...],
    limit: int,
    complete: bool = True,
    preview_lines: int = 12,
) -> VersionCard:
    """A finished version, with the code as a file when it would not fit."""
    header = version_header(session, version)
    warning = "" if complete else "\n⚠️ The answer was cut off; reply “finish it” to get the rest."
    note = f"\n{version.note}" if version.note else ""
    room = limit - len(warning)
    text = f"**{header}**\n{fence(version.code, language.fence)}{note}"
    file = None
    if len(text) > room:
        lines = version.code.splitlines()
        shown = "\n".join(lines[:preview_lines])
        more = len(lines) - preview_lines
        filename = f"snippet.{language.extension}"
        rest = (
            f"… {more} more lines in the file" if more > 0 else "The whole snippet is in the file"
        )
        text = f"**{header}**\n{fence(shown, language.fence)}\n{rest} `{filename}`."
        if len(text) + len(note) <= room:
            text += note
        text = close_open_fence(text[:room])
        file = Attachment(
            filename=filename,
            content=version.code,
            title=f"Snippet #{session.id}, version {version.number}",
            language=language.name,
        )
    return VersionCard(
        text=text + warning,
        summary=f"Version {version.number} of snippet #{session.id}",
        actions=actions,
        file=file,
        header=header,
        code=version.code,
        fence=language.fence,
        note=version.note,
    )


def noncode(
    text: str, *, limit: int, language: str | None = None, wanted: str = ""
) -> NonCodeAnswer:
    """An answer without code, or with code only in another ``language`` than the session's
    (``wanted``); a long one goes whole as ``answer.md``."""
    head = "💬 No code in this answer, so no new version:"
    if language:
        head = (
            f"💬 The model answered in {language}, not {wanted}, so no new version. Ask again, "
            f"or start a {language} snippet (`/code {language.lower()} …`):"
        )
    if len(head) + len(text) + 2 <= limit:
        return NonCodeAnswer(text=f"{head}\n\n{text}", summary="No code in this answer")
    room = limit - len(head) - 60
    shown = text[:room]
    shown = shown[: shown.rfind("\n")] if "\n" in shown else shown
    body = close_open_fence(f"{head}\n\n{shown}") + "\n… (the whole answer is attached)"
    file = Attachment(filename="answer.md", content=text, title="The model's answer")
    return NonCodeAnswer(text=body, summary="No code in this answer", file=file)


def failure(event: Failed) -> FailureCard:
    """A failed turn; Retry sends the kept request again."""
    again = (
        "Your request is kept: **Retry** sends it again, or reply with more detail."
        if event.failure is not None
        else "Reply with more detail to try again."
    )
    return FailureCard(
        text=f"⚠️ {event.message}\n{again}",
        summary=f"That failed: {event.message}"[:150],
        actions=event.actions,
    )


# -- runs ------------------------------------------------------------------------------------


def repair_summary(reports: Sequence[RunReport], *, rounds: int) -> Notice:
    """How a repair ended: passing (after how many fixes), or given up, and why."""
    fixes = len(reports) - 1
    if reports and reports[-1].result.passed:
        how = "at once" if not fixes else f"after {fixes} fix{'es' if fixes != 1 else ''}"
        text = f"✅ Repair done: the tests pass {how}."
    elif fixes >= rounds:
        text = (
            f"Repair gave up after {fixes} fix{'es' if fixes != 1 else ''}: the tests still fail."
        )
    else:
        text = "Repair stopped: the last failure could not be fixed (see above)."
    return Notice(text=text, summary=text, problem=not (reports and reports[-1].result.passed))


def sandbox_queue(position: int) -> Status:
    text = f"⏳ The sandbox is busy; you are #{position} in line."
    return Status(text=text, summary=text)


def writing_tests(session: Session, number: int) -> Status:
    text = f"🧪 Writing unit tests for version {number} with `{session.model}` …"
    return Status(text=text, summary=text)


_OUTCOMES = {
    "ok": ("passed", "✅"),
    "failed": ("failed", "❌"),
    "compile_error": ("did not compile", "❌"),
    "limit": ("was stopped by a limit", "⏱️"),
    "unavailable": ("could not run", "⛔"),
}


def run_summary(report: RunReport) -> str:
    """One line: what ran and how it ended, e.g. "Run of version 2 of #7 passed"."""
    what = "Tests" if report.kind == "test" else "Run"
    outcome = _OUTCOMES.get(report.result.status, (report.result.status, ""))[0]
    return f"{what} of version {report.version.number} of #{report.session.id} {outcome}"


def _facts(report: RunReport) -> str:
    result = report.result
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
    return " · ".join(facts)


def _inputs(report: RunReport) -> str:
    """What a run was given, in one line ("" when nothing)."""
    given = []
    if report.args:
        shown = " ".join(shlex.quote(arg) for arg in report.args)
        given.append(f"arguments `{shown[:200]}`")
    if report.stdin:
        lines = report.stdin.count("\n") + (not report.stdin.endswith("\n"))
        given.append(f"{len(report.stdin.encode()):,} bytes ({lines:,} lines) on stdin")
    return "With " + " and ".join(given) if given else ""


def tests_filename(language: Language) -> str:
    """The file name the sandbox gives a language's tests (``test_snippet.py``, …)."""
    toolchain = toolchain_for(language.name)
    test = toolchain.test if toolchain else None
    return test.file if test else f"tests.{language.extension}"


def _output(title: str, text: str, room: int) -> str:
    """One output in a block; a long one keeps its end (where the error is)."""
    text = text.rstrip("\n")
    if len(text) > room:
        cut = len(text) - room
        text = f"… ({cut:,} more characters before)\n" + text[-max(room, 0) :]
    return f"**{title}**\n{fence(text, 'text')}"


def run_card(
    report: RunReport,
    language: Language,
    *,
    limit: int,
    tests_lines: int = 40,
    tests_chars: int = 1500,
    preview_lines: int = 12,
) -> RunCard:
    """A run or test: the summary and facts, the tests (long ones as their file with a
    preview), then each output, the outputs sharing what room is left."""
    result = report.result
    icon = _OUTCOMES.get(result.status, ("", "❔"))[1]
    summary = run_summary(report)
    parts = [f"{icon} {summary} · {_facts(report)}"]
    if given := _inputs(report):
        parts.append(given)
    if result.message:
        parts.append(result.message)
    if made := files.made_line(result):
        parts.append(made)
    file = None
    if report.tests:
        filename = tests_filename(language)
        lines = report.tests.splitlines()
        if len(report.tests) <= tests_chars and len(lines) < tests_lines:
            parts.append(f"**The tests**\n{fence(report.tests, language.fence)}")
        else:
            shown = "\n".join(lines[:preview_lines])[:tests_chars]
            more = len(lines) - preview_lines
            rest = f"… {more} more lines in" if more > 0 else "All of them in"
            parts.append(
                f"**The tests** (beginning)\n{fence(shown, language.fence)}\n"
                f"_{rest} `{filename}`, attached._"
            )
            file = Attachment(
                filename=filename,
                content=report.tests,
                title=f"Tests of version {report.version.number} of #{report.session.id}",
                language=language.name,
            )
    outputs = [
        (title, text)
        for title, text in (
            ("Compiler", result.compile_output if result.status == "compile_error" else ""),
            ("stdout", result.stdout),
            ("stderr", result.stderr),
        )
        if text.strip()
    ]
    if not outputs:
        parts.append("_(no output)_")
    used = sum(len(p) + 1 for p in parts)
    room = max(40, (limit - used - 80 * len(outputs)) // max(len(outputs), 1))
    parts.extend(_output(title, text, room) for title, text in outputs)
    return RunCard(
        text="\n".join(parts)[:limit],
        summary=summary,
        actions=report.actions,
        file=file,
        outputs=files.outputs(report),
        passed=result.passed,
        session_id=report.session.id,
        number=report.version.number,
    )


# -- history ---------------------------------------------------------------------------------


def diff_card(comparison: Comparison, *, limit: int) -> Notice:
    """What changed between two versions; a long diff goes whole as a ``.diff`` file."""
    session, old, new = comparison.session, comparison.old, comparison.new
    head = f"🔀 Version {old.number} → {new.number} of #{session.id}"
    if not comparison.diff:
        text = f"{head}: the code is the same."
        return Notice(text=text, summary=text)
    added = sum(1 for line in comparison.diff.splitlines() if line[:1] == "+") - 1
    removed = sum(1 for line in comparison.diff.splitlines() if line[:1] == "-") - 1
    head += f" · +{added} -{removed}"
    text = f"{head}\n{fence(comparison.diff, 'diff')}"
    if len(text) <= limit:
        return Notice(text=text, summary=head)
    shown = tail(fence(comparison.diff, "diff"), limit - len(head) - 80)
    file = Attachment(
        filename=f"snippet-{session.id}-v{old.number}-v{new.number}.diff",
        content=comparison.diff,
        title=head,
        language="diff",
    )
    return Notice(text=f"{head} (the whole diff is attached)\n{shown}", summary=head, file=file)


def history_link(url: str, *, minutes: int) -> Notice:
    """The private answer to View history: a link that signs this person in, once."""
    return Notice(
        text=(
            f"🕘 [Open your snippets' history]({url}): versions, diffs and runs, with "
            f"highlighted code. The link is yours alone: it signs you in once, within "
            f"{minutes} minutes."
        ),
        summary="Your history link",
    )


def download(session: Session, version: Version, language: Language) -> Notice:
    """A version's code as a file named for its language."""
    text = f"📥 Version {version.number} of #{session.id} as `snippet.{language.extension}`."
    file = Attachment(
        filename=f"snippet.{language.extension}",
        content=version.code,
        title=f"Snippet #{session.id}, version {version.number}",
        language=language.name,
    )
    return Notice(text=text, summary=text, file=file)


# -- sessions --------------------------------------------------------------------------------


def request_post(
    *, who: str, language: Language, model: str, prompt: str, limit: int, escape: Escape = _same
) -> RequestPost:
    """The post a session's thread starts from."""
    head = f"{who} asked for a **{language.label}** snippet · model `{model}`"
    foot = "Reply in this thread to change it · `/snippets` lists yours"
    quoted = "\n".join(f"> {line}" if line else ">" for line in escape(prompt).splitlines())
    room = limit - len(head) - len(foot) - 4
    if len(quoted) > room:
        quoted = quoted[: max(room - 40, 0)].rstrip() + "\n> … (the whole request is used)"
    first = prompt.splitlines()[0] if prompt.strip() else ""
    return RequestPost(
        text=f"{head}\n{quoted}\n{foot}",
        summary=f"New {language.label} snippet: {escape(first[:150])}",
    )


def deleted(session: Session, *, escape: Escape = _same) -> Notice:
    text = f"Deleted snippet #{session.id} ({escape(session.title)})."
    return Notice(text=text, summary=text)


def closed(session: Session, *, by: str) -> Closed:
    """The last word in a deleted session's thread."""
    text = f"🗑️ Snippet #{session.id} was deleted by {by}; replies here are no longer read."
    return Closed(text=text, summary=text)


def snippet_list(
    sessions: Sequence[Session],
    links: Mapping[int, str],
    *,
    limit: int,
    escape: Escape = _same,
) -> Notice:
    """The caller's sessions, newest first, each with a link to its thread where there is one."""
    if not sessions:
        text = "You have no snippets here yet. Start one with `/code PROMPT`."
        return Notice(text=text, summary=text)
    lines = [f"**Your snippets** ({len(sessions)}), most recent first:"]
    for s in sessions:
        title, link = escape(s.title), links.get(s.id, "")
        url = link.startswith("http")
        name = f"[{title}]({link})" if url else title
        where = f" · {link}" if link and not url else ""
        versions = f"{s.version_count} version{'s' if s.version_count != 1 else ''}"
        line = f"• `#{s.id}` {name} · {s.language} · {versions}{where}"
        if sum(len(x) + 1 for x in lines) + len(line) > limit - 120:
            lines.append("…")
            break
        lines.append(line)
    lines.append(SNIPPETS_HELP)
    return Notice(text="\n".join(lines), summary=f"Your snippets ({len(sessions)})")


def shown(
    session: Session,
    version: Version | None,
    language: Language,
    *,
    link: str | None,
    limit: int,
    actions: tuple[Action, ...] = (),
) -> Notice:
    """``/snippets show``: a version for the caller's eyes, with the way to its thread."""
    where = f"[the thread]({link})" if link and link.startswith("http") else (link or "its thread")
    if version is None:
        text = f"Snippet #{session.id} ({session.title}) has no version yet; see {where}."
        return Notice(text=text, summary=f"Snippet #{session.id}")
    foot = f"\n\n{session.title} · {where}"
    card = version_card(session, version, language, actions=actions, limit=limit - len(foot))
    return Notice(
        text=card.text + foot, summary=f"Snippet #{session.id}", file=card.file, actions=actions
    )


# -- buttons ---------------------------------------------------------------------------------

_LOOKS = {
    "run": ActionLook(kind="run", label="Run", emoji="▶️", style="primary"),
    "input": ActionLook(kind="input", label="Run with input…", emoji="⌨️"),
    "test": ActionLook(kind="test", label="Test", emoji="🧪"),
    "fix": ActionLook(kind="fix", label="Fix", emoji="🛠️", style="primary"),
    "retry": ActionLook(kind="retry", label="Retry", emoji="🔁", style="primary"),
    "diff": ActionLook(kind="diff", label="Diff", emoji="🔀"),
    "revert": ActionLook(kind="revert", label="Revert to this", emoji="⏪"),
    "download": ActionLook(kind="download", label="Download", emoji="📥"),
    "delete": ActionLook(kind="delete", label="Delete session", emoji="🗑️", style="danger"),
    "history": ActionLook(kind="history", label="View history", emoji="🕘"),
}


_COMMANDS = {
    "run": "/run",
    "input": "/run --stdin FILE -- ARG…",
    "test": "/test",
    "fix": "/fix",
    "retry": "/retry",
    "diff": "/diff",
    "revert": "/revert",
    "download": "/export",
    "delete": "/delete",
    "history": "codethread web",
}


def commands(actions: Sequence[Action]) -> str:
    """The terminal's commands for ``actions``, e.g. "Next: /run 2 · /test · /delete"."""
    named = [
        _COMMANDS[a.kind] + (f" {a.number}" if a.kind in ("run", "revert") and a.number else "")
        for a in actions
        # the terminal has the code on screen and `snippets export`; /run's options are in
        # /help
        if a.kind not in ("download", "input", "history")
    ]
    return f"Next: {' · '.join(named)}" if named else ""


def look(action: Action) -> ActionLook:
    """How ``action``'s button reads; Delete asks for confirmation where the platform can."""
    found = _LOOKS[action.kind]
    if action.kind != "delete":
        return found
    return ActionLook(
        kind=found.kind,
        label=found.label,
        emoji=found.emoji,
        style=found.style,
        confirm=(
            "Delete this snippet?",
            f"Session #{action.session_id} and all its versions are deleted, with the bot's "
            "messages in this thread. This cannot be undone.",
            "Delete",
            "Keep it",
        ),
    )
