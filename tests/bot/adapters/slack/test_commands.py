"""What people type to the Slack app: ``/code`` text, snippet numbers, the form, Slack markup."""

from __future__ import annotations

import re

import pytest

from bot.adapters.slack.commands import (
    RUN_MODAL,
    code_modal,
    modal_values,
    parse_code,
    run_modal,
    run_modal_values,
    snippet_ref,
    to_plain,
)
from bot.errors import UserError
from bot.languages import Languages
from bot.present import words
from bot.values import Action
from tests.fakes.slack_api import BOT_USER, FakeSlack, view_errors


def test_parse_code() -> None:
    langs = Languages()
    assert parse_code("python model:gpt-4o sum a list", langs).model == "gpt-4o"
    request = parse_code("model:fake:echo Rust  sum\n  a list", langs)
    assert (request.language, request.model, request.prompt) == (
        "Rust",
        "fake:echo",
        "sum\n  a list",
    )
    assert parse_code("language:cobol x", langs).language == "cobol"
    assert parse_code("sort numbers in python", langs).language is None
    assert parse_code("go", langs).prompt == ""
    with pytest.raises(UserError, match="Name a model after `model:`"):
        parse_code("model: hi", langs)


def test_snippet_ref() -> None:
    assert snippet_ref("12") == snippet_ref(" #12 ") == 12
    assert snippet_ref("one") is None and snippet_ref("") is None


def test_to_plain() -> None:
    text = f"<@{BOT_USER}> fetch <https://example.com|example.com> &amp; a&lt;b <@U2>"
    assert to_plain(text, bot_user=BOT_USER) == "fetch https://example.com & a<b <@U2>"
    assert re.fullmatch(r"mail a@b\.c", to_plain("mail <mailto:a@b.c|a@b.c>"))


def test_the_code_form_round_trip() -> None:
    view = code_modal(
        channel="C9",
        languages=Languages(),
        models=[("m1", "a model"), ("m2", "")],
        language="go",
        model="m2",
        max_chars=8000,
    )
    inputs = {b["block_id"]: b for b in view["blocks"]}
    assert inputs["language"]["element"]["initial_option"]["value"] == "go"
    assert [o["text"]["text"] for o in inputs["model"]["element"]["options"]] == [
        "m1 — a model",
        "m2",
    ]
    assert inputs["prompt"]["element"]["max_length"] == 3000
    assert view["title"]["text"] == "New snippet" and view["submit"]["text"] == "Write it"
    values = {
        "language": {"value": {"selected_option": {"value": "rust"}}},
        "model": {"value": {"selected_option": None}},
        "prompt": {"value": {"value": "sum a list"}},
    }
    submitted = {**view, "state": {"values": values}}
    assert modal_values(submitted) == ("C9", "rust", None, "sum a list")


def test_the_run_form_round_trip() -> None:
    action = Action(kind="input", session_id=12, number=3)
    view = run_modal(action, channel="C9", thread="1700000000.000001")
    assert view_errors(view) == [] and view["callback_id"] == RUN_MODAL
    assert view["title"]["text"] == words.RUN_FORM["title"]
    stdin, args = view["blocks"]
    assert stdin["element"]["placeholder"]["text"] == words.RUN_FORM["stdin_placeholder"]
    assert args["label"]["text"] == words.RUN_FORM["args"]
    submitted = FakeSlack().submission(view, {"stdin": "3\n4\n", "args": "a 'b c'"})
    asked = run_modal_values(submitted["view"])
    assert (asked.action, asked.channel, asked.thread) == (action, "C9", "1700000000.000001")
    assert (asked.stdin, asked.args) == ("3\n4\n", "a 'b c'")
    empty = run_modal_values(FakeSlack().submission(view, {})["view"])
    assert (empty.stdin, empty.args) == ("", "")
    assert run_modal_values({"private_metadata": "not json"}).action is None
