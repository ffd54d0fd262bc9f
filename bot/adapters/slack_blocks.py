"""Block Kit for the Slack adapter: every message and view it posts, as plain data.

Code goes in Slack's ``markdown`` block (standard markdown, so a fenced block keeps its language
tag and gets highlighted; mrkdwn sections would show the tag as a line of code). One message
holds at most :data:`MESSAGE_LIMIT` characters of it, Slack's advice for a readable message;
longer snippets go to the thread as a file with a preview here. Text that people wrote or that
Slack sent is escaped before it goes into mrkdwn (``&``, ``<``, ``>``), and Slack's own markup
in incoming text (mentions, ``<url|label>`` links, entities) is turned back into plain text
before it reaches the core.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapters.render import RenderedVersion, partial, run_summary
from bot.codeblocks import close_open_fence, fence
from bot.languages import Language
from bot.values import RunReport
from storage import Session

__all__ = [
    "DELETE",
    "FIX",
    "MESSAGE_LIMIT",
    "MODAL",
    "RETRY",
    "RUN",
    "TEST",
    "Message",
    "code_modal",
    "escape",
    "failed_message",
    "modal_values",
    "needs_tests_file",
    "noncode_message",
    "parent_message",
    "run_message",
    "show_message",
    "snippet_type",
    "snippets_list",
    "status_message",
    "to_plain",
    "version_message",
    "writing_message",
]

#: characters of markdown in one message (Slack advises 4,000; a markdown block takes 12,000)
MESSAGE_LIMIT = 3900
_SECTION_LIMIT = 2900  # a section block's text takes 3,000
#: characters of unit tests shown in a test result; longer tests go as a file with a preview
_TESTS_LIMIT = 1500
_TESTS_LINES = 40  # more lines than this go as a file too
_TESTS_PREVIEW_LINES = 12

RUN = "codethread_run"
TEST = "codethread_test"
FIX = "codethread_fix"
DELETE = "codethread_delete"
RETRY = "codethread_retry"
MODAL = "codethread_code"

Blocks = list[dict[str, Any]]

# Slack's file types, where they differ from our language names.
_SNIPPET_TYPES = {"bash": "shell"}


@dataclass(frozen=True, slots=True)
class Message:
    text: str  # the notification / fallback text
    blocks: Blocks


# -- text ------------------------------------------------------------------------------------

_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


def escape(text: str) -> str:
    """``text`` safe inside mrkdwn (Slack's three control characters as entities)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_plain(text: str, *, bot_user: str | None = None) -> str:
    """Slack-formatted message text as the person typed it, without mentions of the bot."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", "", text)
    text = _LINK.sub(lambda m: m.group(1).removeprefix("mailto:"), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _quote(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    return "\n".join(f"&gt; {line}" if line else "&gt;" for line in escape(text).splitlines())


def snippet_type(language: Language) -> str:
    """Slack's file type (syntax highlighting of an uploaded snippet) for a language."""
    return _SNIPPET_TYPES.get(language.name, language.name)


# -- blocks ----------------------------------------------------------------------------------


def _markdown(text: str) -> dict[str, Any]:
    return {"type": "markdown", "text": text or " "}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_LIMIT]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(label: str, action_id: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
        **extra,
    }


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


# -- messages --------------------------------------------------------------------------------


def parent_message(*, user: str, language: Language, model: str, prompt: str) -> Message:
    """The channel message a session's thread hangs from: who asked, for what, with which model."""
    head = f"<@{user}> asked for a *{language.label}* snippet · model `{escape(model)}`"
    first_line = prompt.splitlines()[0] if prompt.strip() else ""
    return Message(
        text=f"New {language.label} snippet for <@{user}>: {escape(first_line[:150])}",
        blocks=[
            _section(f"{head}\n{_quote(prompt, 2500)}"),
            _context("Reply in this thread to change it · `/snippets` lists yours"),
        ],
    )


def status_message(text: str) -> Message:
    """A turn that has not started yet (queued behind others, model loading)."""
    return Message(text=text, blocks=[_context(text)])


def writing_message(*, number: int, model: str, text: str) -> Message:
    """The version message while the model writes: the newest part of its answer."""
    head = f"**Version {number}** · writing with `{model}` …"
    body = partial(text, limit=MESSAGE_LIMIT - len(head) - 2) if text.strip() else "…"
    return Message(text=f"Writing version {number} …", blocks=[_markdown(f"{head}\n\n{body}")])


def version_message(
    session: Session,
    rendered: RenderedVersion,
    *,
    number: int,
    complete: bool,
    can_run: bool,
    can_test: bool = False,
) -> Message:
    """A finished version, with its buttons: Run and Test (when they work here), Delete session."""
    body = rendered.text
    if not complete:
        body += "\n\n⚠️ The answer was cut off; reply *finish it* to get the rest."
    ref = f"{session.id}:{number}"
    buttons = []
    if can_run:
        buttons.append(_button("▶ Run", RUN, ref, style="primary"))
    if can_test:
        buttons.append(_button("🧪 Test", TEST, ref))
    buttons.append(
        _button(
            "Delete session",
            DELETE,
            str(session.id),
            style="danger",
            confirm={
                "title": _plain("Delete this snippet?"),
                "text": {
                    "type": "mrkdwn",
                    "text": f"Session #{session.id} and all its versions are deleted, "
                    "with the bot's messages in this thread. This cannot be undone.",
                },
                "confirm": _plain("Delete"),
                "deny": _plain("Keep it"),
                "style": "danger",
            },
        )
    )
    return Message(
        text=f"Version {number} of snippet #{session.id}",
        blocks=[_markdown(body), {"type": "actions", "elements": buttons}],
    )


def noncode_message(text: str) -> Message:
    """An answer without code: shown as such, no version made."""
    head = "_No code in this answer, so no new version:_"
    room = MESSAGE_LIMIT - len(head) - 4
    body = text if len(text) <= room else close_open_fence(text[:room].rstrip() + " …")
    return Message(text="No code in this answer", blocks=[_markdown(f"{head}\n\n{body}")])


def failed_message(session: Session, message: str) -> Message:
    """A failed turn; the request is kept and the Retry button sends it again."""
    text = (
        f":warning: {escape(message)}\nYour request is kept: press *Retry* to send it again, "
        "or reply with more detail."
    )
    return Message(
        text=f"That failed: {escape(message)}",
        blocks=[
            _section(text),
            {"type": "actions", "elements": [_button("Retry", RETRY, str(session.id))]},
        ],
    )


_ICONS = {
    "ok": ":white_check_mark:",
    "failed": ":x:",
    "compile_error": ":x:",
    "limit": ":stopwatch:",
    "unavailable": ":no_entry:",
}


def _output(title: str, text: str, room: int) -> str:
    if len(text) > room:
        text = text[: max(room, 0)] + f"\n… ({len(text) - room:,} more characters)"
    return f"{title}\n{fence(text, 'text')}"


def needs_tests_file(tests: str) -> bool:
    """Whether unit tests are too long for a result message (a preview, and the whole file)."""
    return len(tests) > _TESTS_LIMIT or tests.count("\n") >= _TESTS_LINES


def _tests(tests: str, info: str, filename: str | None) -> str:
    if filename is None:
        return f"**The tests**\n{fence(tests, info)}"
    lines = tests.splitlines()
    shown = "\n".join(lines[:_TESTS_PREVIEW_LINES])[:_TESTS_LIMIT]
    more = len(lines) - _TESTS_PREVIEW_LINES
    rest = f"… {more} more lines in" if more > 0 else "All of them in"
    return f"**The tests** (beginning)\n{fence(shown, info)}\n_{rest} `{filename}` below._"


def run_message(
    report: RunReport, *, tests_info: str = "", tests_file: str | None = None
) -> Message:
    """A sandboxed run or test: the summary, the tests, the outputs, and Fix when it failed.

    Tests go in a code block tagged ``tests_info``; with ``tests_file`` only their beginning
    does (the adapter posts the whole file next to the message).
    """
    result, version = report.result, report.version
    summary = run_summary(report)
    parts = [f"{_ICONS.get(result.status, ':grey_question:')} {summary}"]
    if result.message:
        parts.append(result.message)
    if report.tests:
        parts.append(_tests(report.tests, tests_info, tests_file))
    outputs = [
        (title, text)
        for title, text in (
            ("**Compiler**", result.compile_output),
            ("**stdout**", result.stdout),
            ("**stderr**", result.stderr),
        )
        if text
    ]
    if not outputs:
        parts.append("_(no output)_")
    room = (MESSAGE_LIMIT - sum(len(p) + 1 for p in parts) - 120) // max(len(outputs), 1)
    parts.extend(_output(title, text, room) for title, text in outputs)
    blocks: Blocks = [_markdown("\n".join(parts))]
    if not result.passed and result.status != "unavailable":
        ref = f"{report.session.id}:{version.number}"
        fix = _button("🔧 Fix", FIX, ref, style="primary")
        blocks.append({"type": "actions", "elements": [fix]})
    return Message(text=summary.split(" · ")[0], blocks=blocks)


def snippets_list(sessions: Sequence[Session], links: Mapping[int, str]) -> Message:
    """The caller's sessions, newest first, each linking to its thread."""
    if not sessions:
        text = "You have no snippets in this workspace yet. Start one with `/code PROMPT`."
        return Message(text=text, blocks=[_section(text)])
    lines = []
    for s in sessions:
        title = escape(s.title).replace("|", "¦")
        link = f"<{links[s.id]}|{title}>" if s.id in links else title
        versions = f"{s.version_count} version{'s' if s.version_count != 1 else ''}"
        when = f"<!date^{int(s.updated_at)}^{{date_short_pretty}} {{time}}|recently>"
        lines.append(f"• *#{s.id}* {link} · {s.language} · {versions} · {when}")
    blocks: Blocks = [_section(f"*Your snippets* ({len(sessions)})")]
    chunk: list[str] = []
    for line in lines:
        if chunk and sum(len(c) + 1 for c in chunk) + len(line) > _SECTION_LIMIT:
            blocks.append(_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    blocks.append(_section("\n".join(chunk)))
    blocks.append(_context("`/snippets show ID` · `/snippets run ID` · `/snippets delete ID`"))
    return Message(text=f"Your snippets ({len(sessions)})", blocks=blocks)


def show_message(session: Session, rendered: RenderedVersion | None, link: str | None) -> Message:
    where = f"[the thread]({link})" if link else "its thread"
    if rendered is None:
        body = f"Snippet #{session.id} ({session.title}) has no version yet; see {where}."
    else:
        body = f"{rendered.text}\n\n{session.title} · {where}"
        if rendered.filename:
            body += f" has the whole snippet as `{rendered.filename}`"
    return Message(text=f"Snippet #{session.id}", blocks=[_markdown(body)])


# -- the /code form ----------------------------------------------------------------------------


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": _plain(label[:75]), "value": value}


def _select(block_id: str, label: str, options: list[dict[str, Any]], initial: str) -> Blocks:
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
    chosen = next((o for o in options if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return [{"type": "input", "block_id": block_id, "label": _plain(label), "element": element}]


def code_modal(
    *,
    channel: str,
    languages: Iterable[Language],
    models: Iterable[tuple[str, str]],
    language: str,
    model: str,
    max_chars: int,
) -> dict[str, Any]:
    """The form behind a bare ``/code``: language and model selects and a prompt box."""
    language_options = [_option(lang.name, lang.label) for lang in languages][:100]
    model_options = [
        _option(name, f"{name} — {about}" if about else name) for name, about in models
    ][:100]
    prompt = {
        "type": "input",
        "block_id": "prompt",
        "label": _plain("What should the code do?"),
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": True,
            "max_length": min(max_chars, 3000),
            "placeholder": _plain("e.g. parse a CSV file and sum the third column"),
        },
    }
    return {
        "type": "modal",
        "callback_id": MODAL,
        "title": _plain("New snippet"),
        "submit": _plain("Write it"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": [
            *_select("language", "Language", language_options, language),
            *_select("model", "Model", model_options, model),
            prompt,
        ],
    }


def modal_values(view: Mapping[str, Any]) -> tuple[str, str | None, str | None, str]:
    """(channel, language, model, prompt) from a submitted :func:`code_modal`."""
    values = view["state"]["values"]

    def selected(block: str) -> str | None:
        option = (values.get(block, {}).get("value") or {}).get("selected_option")
        return option["value"] if option else None

    channel = json.loads(view.get("private_metadata") or "{}").get("channel", "")
    prompt = (values.get("prompt", {}).get("value") or {}).get("value") or ""
    return channel, selected("language"), selected("model"), prompt
