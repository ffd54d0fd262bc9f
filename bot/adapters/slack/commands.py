"""What people type to the Slack app, as the core's values: ``/code`` text, ``/snippets``
arguments, the ``/code`` and Run with input… forms, and Slack's markup turned back into plain
text.

``/code [language|language:X] [model:REF] PROMPT`` takes the language and model words in either
order; the rest is the prompt, and a bare ``/code`` opens :func:`code_modal`. Incoming text is
Slack-formatted (entities, ``<url|label>`` links, ``<@U…>`` mentions): :func:`to_plain` gives
what the person typed, without mentions of the bot, before it reaches the core. The forms'
words come from :data:`bot.present.words.CODE_FORM` and :data:`~bot.present.words.RUN_FORM`.

The Run with input… form (:func:`run_modal`) keeps in its ``private_metadata`` the button's
action (``input:12:3``) and where to answer (the channel and the thread's ts), since a
``view_submission`` says neither; :func:`run_modal_values` reads it back with the standard
input and the arguments field as typed (split later by :func:`bot.run_options.parse_args`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import UserError
from bot.languages import Language, Languages
from bot.present import words
from bot.values import Action

__all__ = [
    "MODAL",
    "RUN_MODAL",
    "CodeRequest",
    "RunRequest",
    "code_modal",
    "modal_values",
    "parse_code",
    "run_modal",
    "run_modal_values",
    "snippet_ref",
    "to_plain",
]

MODAL = "codethread_code"  # the /code form's callback id
RUN_MODAL = "codethread_run_input"  # the Run with input… form's
_TEXT_INPUT = 3000  # the most a plain_text_input takes

_WORD = re.compile(r"\s*(\S+)")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRequest:
    language: str | None
    model: str | None
    prompt: str


def parse_code(text: str, languages: Languages) -> CodeRequest:
    """``[language|language:X] [model:REF] PROMPT``, in either order; the rest is the prompt."""
    language: str | None = None
    model: str | None = None
    rest = text.strip()
    for _ in range(2):
        match = _WORD.match(rest)
        if match is None:
            break
        word = match.group(1)
        name, sep, value = word.partition(":")
        if sep and name.lower() == "model" and model is None:
            model = value
        elif sep and name.lower() in ("language", "lang") and language is None:
            language = value
        elif not sep and language is None and word in languages:
            language = word
        else:
            break
        rest = rest[match.end() :].lstrip(" \t")
    if model == "":
        raise UserError(words.NAME_A_MODEL)
    return CodeRequest(language=language, model=model, prompt=rest.strip())


def snippet_ref(text: str) -> int | None:
    """A snippet number as people type it (``12`` or ``#12``); None for anything else."""
    word = text.strip().removeprefix("#")
    return int(word) if word.isdigit() else None


def to_plain(text: str, *, bot_user: str | None = None) -> str:
    """Slack-formatted message text as the person typed it, without mentions of the bot."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", "", text)
    text = _LINK.sub(lambda m: m.group(1).removeprefix("mailto:"), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


# -- the /code form ----------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _select(block_id: str, options: list[tuple[str, str]], initial: str) -> dict[str, Any]:
    choices = [{"text": _plain(label[:75]), "value": value} for value, label in options][:100]
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": choices}
    chosen = next((o for o in choices if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    label = _plain(words.CODE_FORM[block_id])
    return {"type": "input", "block_id": block_id, "label": label, "element": element}


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
    form = words.CODE_FORM
    prompt = {
        "type": "input",
        "block_id": "prompt",
        "label": _plain(form["prompt"]),
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": True,
            "max_length": min(max_chars, 3000),
            "placeholder": _plain(form["placeholder"]),
        },
    }
    model_options = [(name, f"{name} — {about}" if about else name) for name, about in models]
    return {
        "type": "modal",
        "callback_id": MODAL,
        "title": _plain(form["title"]),
        "submit": _plain(form["submit"]),
        "close": _plain(form["close"]),
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": [
            _select("language", [(lang.name, lang.label) for lang in languages], language),
            _select("model", model_options, model),
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


# -- the Run with input… form ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """A submitted Run with input… form: what to run, where to answer, and what was typed."""

    action: Action | None  # None: the form's metadata was not ours
    channel: str
    thread: str | None
    stdin: str
    args: str  # as typed; split like a shell's by the caller


def _text_input(block_id: str, *, multiline: bool) -> dict[str, Any]:
    form = words.RUN_FORM
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": _plain(form[block_id]),
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": multiline,
            "max_length": _TEXT_INPUT,
            "placeholder": _plain(form[f"{block_id}_placeholder"]),
        },
    }


def run_modal(action: Action, *, channel: str, thread: str | None) -> dict[str, Any]:
    """The form behind a Run with input… button: standard input (several lines) and
    arguments (one line), both optional; the answer goes to ``thread`` in ``channel``."""
    form = words.RUN_FORM
    where = {"action": action.encode(), "channel": channel, "thread": thread}
    return {
        "type": "modal",
        "callback_id": RUN_MODAL,
        "title": _plain(form["title"]),
        "submit": _plain(form["submit"]),
        "close": _plain(form["close"]),
        "private_metadata": json.dumps(where),
        "blocks": [_text_input("stdin", multiline=True), _text_input("args", multiline=False)],
    }


def run_modal_values(view: Mapping[str, Any]) -> RunRequest:
    """What a submitted :func:`run_modal` asks for."""
    values = view.get("state", {}).get("values", {})

    def typed(block: str) -> str:
        return str((values.get(block, {}).get("value") or {}).get("value") or "")

    try:
        where = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        where = {}
    if not isinstance(where, dict):
        where = {}
    thread = where.get("thread")
    return RunRequest(
        action=Action.decode(str(where.get("action") or "")),
        channel=str(where.get("channel") or ""),
        thread=str(thread) if thread else None,
        stdin=typed("stdin"),
        args=typed("args"),
    )
