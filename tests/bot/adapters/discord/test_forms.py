"""Run with input…: the button answers with a modal, its submit runs the version with that
stdin and those arguments; ``/snippets run`` takes them as options."""

from __future__ import annotations

from typing import Any

import discord

from bot.adapters.discord.forms import submitted
from bot.app import App
from bot.present import words
from engines import FakeEngine
from tests.fakes.discord_fakes import BOB, settle

from ...conftest import fenced
from .conftest import (
    CALLBACK,
    DELETE_ORIGINAL,
    EPHEMERAL,
    FOLLOWUP,
    ORIGINAL,
    SEND,
    Bot,
    Connect,
    message_id,
)

ECHO = """\
import sys

numbers = [int(word) for word in sys.stdin.read().split()]
print(sum(numbers), sys.argv[1:])"""
MODAL = 9


def inputs(modal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A modal's text inputs by custom id, each with its label's text."""
    found = {}
    for label in modal["components"]:
        assert label["type"] == 18  # each input in its own label
        component = label["component"]
        found[component["custom_id"]] = {**component, "label": label["label"]}
    return found


async def run_with_input(bot: Bot, message: int, values: dict[str, str], **who: Any) -> str:
    """Press Run with input… under ``message``, fill the form in; the submit's token."""
    token = bot.gateway.click(message, "ct:input:1:1", **who)
    await settle()
    submit = bot.gateway.submit(token, values, **who)
    await settle()
    return submit


async def test_run_with_input_asks_with_a_modal_and_runs_with_what_was_typed(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(ECHO)
    _, thread_id = await bot.code("sum the numbers on stdin")
    version = message_id(bot.final(thread_id))

    token = bot.gateway.click(version, "ct:input:1:1", user=BOB)  # anyone in the thread
    await settle()
    [answer] = bot.for_token(token)  # the form is the acknowledgement
    assert answer.key == CALLBACK and answer.json["type"] == MODAL
    modal = bot.fake.modals[token]
    assert modal["custom_id"] == "ct:input:1:1" and modal["title"] == words.RUN_FORM["title"]
    fields = inputs(modal)
    assert list(fields) == ["stdin", "args"]
    stdin, args = fields["stdin"], fields["args"]
    assert stdin["label"] == words.RUN_FORM["stdin"] and stdin["style"] == 2  # a paragraph
    assert stdin["max_length"] == 4000 and stdin["required"] is False
    assert stdin["placeholder"] == words.RUN_FORM["stdin_placeholder"]
    assert args["label"] == words.RUN_FORM["args"] and args["style"] == 1  # one line
    assert args["required"] is False and args["placeholder"] == words.RUN_FORM["args_placeholder"]
    assert bot.adapter.client._connection._view_store._modals == {}  # nothing kept per form

    submit = bot.gateway.submit(token, {"stdin": "3\n4\n", "args": 'a "b c"'}, user=BOB)
    await settle()
    calls = bot.for_token(submit)
    assert calls[0].key == CALLBACK and calls[0].json["type"] == 5  # deferred, public
    result = calls[-1]
    assert result.key == ORIGINAL and "passed · exit 0" in result.content
    assert "7 ['a', 'b c']" in result.content
    [v1] = await app.store.list_versions(1)
    run = await app.store.latest_run(v1.id)
    assert run is not None and (run.stdin, run.args) == ("3\n4\n", ("a", "b c"))


async def test_an_empty_form_runs_without_input(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(ECHO)
    _, thread_id = await bot.code("sum")
    submit = await run_with_input(bot, message_id(bot.final(thread_id)), {})
    assert "0 []" in bot.for_token(submit)[-1].content


async def test_arguments_that_cannot_be_split_are_refused_privately(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(ECHO)
    _, thread_id = await bot.code("sum")
    before = len(bot.fake.in_channel(thread_id))
    submit = await run_with_input(
        bot, message_id(bot.final(thread_id)), {"stdin": "1", "args": 'a "b'}
    )
    [answer] = bot.for_token(submit)  # the refusal is the acknowledgement
    assert answer.key == CALLBACK and answer.json["type"] == 4
    assert answer.json["data"]["flags"] & EPHEMERAL
    assert "The arguments could not be read (No closing quotation)" in answer.content
    [v1] = await app.store.list_versions(1)
    assert await app.store.latest_run(v1.id) is None
    assert len(bot.fake.in_channel(thread_id)) == before


async def test_the_form_works_across_a_restart_and_only_in_its_own_thread(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(ECHO)
    _, first = await bot.code("first")
    _, second = await bot.code("second")
    token = bot.gateway.click(message_id(bot.final(first)), "ct:input:1:1")
    await settle()
    await bot.restart()  # opened before, submitted after: no modal object survives

    submit = bot.gateway.submit(token, {"stdin": "5 6"})
    await settle()
    assert "11 []" in bot.for_token(submit)[-1].content

    stray = bot.fake.posted(second, "ct:input:1:1")  # #1's button in #2's thread
    [answer] = await bot.click(stray, "ct:input:1:1")
    assert answer.json["type"] == 4 and answer.json["data"]["flags"] & EPHEMERAL
    assert "belongs to a snippet in another thread" in answer.content


async def test_without_a_sandbox_the_submitted_form_is_refused(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await connected(run_snippets=False)
    _, thread_id = await bot.code("one")
    earlier = bot.fake.posted(thread_id, "ct:input:1:1")  # from when there was a sandbox
    submit = await run_with_input(bot, earlier, {"stdin": "1"})
    calls = bot.for_token(submit)
    assert [c.key for c in calls] == [CALLBACK, DELETE_ORIGINAL, FOLLOWUP]
    assert calls[-1].json["flags"] & EPHEMERAL
    assert "Running snippets is turned off here." in calls[-1].content


def test_other_modals_are_not_run_forms() -> None:
    class Submitted:
        def __init__(self, kind: int, custom_id: str) -> None:
            self.type = discord.InteractionType(kind)
            self.data = {"custom_id": custom_id, "components": []}

    for kind, custom_id in ((5, "ct:run:1:1"), (5, "somebody-elses"), (3, "ct:input:1:1")):
        assert submitted(Submitted(kind, custom_id)) is None  # type: ignore[arg-type]
    form = submitted(Submitted(5, "ct:input:12:3"))  # type: ignore[arg-type]
    assert form is not None and (form.action.session_id, form.action.number) == (12, 3)
    assert (form.stdin, form.args) == ("", "")


# -- /snippets run ---------------------------------------------------------------------------


async def test_snippets_run_takes_stdin_and_arguments(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(ECHO)
    await bot.code("sum")
    token = bot.gateway.slash(
        "snippets", subcommand="run", id=1, stdin="1 2 3", args="--name 'x y'"
    )
    await settle()
    answer = bot.for_token(token)[-1]
    assert answer.key == FOLLOWUP and answer.json["flags"] & EPHEMERAL
    assert "6 ['--name', 'x y']" in answer.content

    token = bot.gateway.slash("snippets", subcommand="run", id=1, args="'open")
    await settle()
    [refusal] = bot.for_token(token)
    assert refusal.key == CALLBACK and refusal.json["data"]["flags"] & EPHEMERAL
    assert "The arguments could not be read" in refusal.content

    token = bot.gateway.slash("snippets", subcommand="run", id=1, user=BOB, stdin="1")
    await settle()
    assert "only its owner" in bot.for_token(token)[-1].content
    assert not [c for c in bot.fake.calls_to(SEND) if "6 [" in c.content]  # never public
