"""The Discord adapter against real discord.py objects, offline (see tests/fakes/discord_fakes)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import discord
import pytest

from bot.adapters.discord_adapter import DiscordAdapter
from bot.adapters.discord_render import run_message
from bot.app import App, build
from bot.config import Config
from bot.languages import Languages
from bot.values import RunReport
from engines import Engine, EngineUnavailable, FakeEngine, GenerationRequest, ModelSpec
from sandbox import RunResult
from storage import Session, SessionKey, Version
from tests.fakes.discord_fakes import (
    ALICE,
    APP_ID,
    BOB,
    BOT,
    CHANNEL_ID,
    GUILD_ID,
    OTHER_BOT,
    Call,
    DiscordServer,
    FakeDiscord,
    FakeGateway,
    http_error,
    interaction_payload,
    settle,
)

from .conftest import fenced

CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
DELETE_ORIGINAL = "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/@original"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"
SEND = "POST /channels/{channel_id}/messages"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
EPHEMERAL = 64


async def start_app(tmp_path: Path, fake: FakeEngine, **settings: object) -> App:
    def factory(spec: ModelSpec) -> Engine:
        return fake

    config = Config(
        db_path=tmp_path / "ct.db",
        model="fake:echo",
        rate_limit_per_minute=0,
        discord_bot_token="test-token",
        **settings,  # type: ignore[arg-type]
    )
    app = await build(config, engine_factory=factory)
    await app.start()  # probes the sandbox: Run and Test appear where bubblewrap works
    return app


@pytest.fixture
async def app(tmp_path: Path, fake: FakeEngine) -> AsyncIterator[App]:
    app = await start_app(tmp_path, fake)
    yield app
    await app.aclose()


@pytest.fixture
def needs_sandbox(app: App) -> None:
    """Skips a test that runs code when the sandbox does not work here."""
    if not app.runs.can_run:
        pytest.skip("no working sandbox here (bubblewrap missing, or namespaces refused)")


@dataclass
class Bot:
    fake: FakeDiscord
    adapter: DiscordAdapter
    gateway: FakeGateway

    def for_token(self, token: str) -> list[Call]:
        return [c for c in self.fake.calls if c.params.get("webhook_token") == token]

    async def code(self, prompt: str, **options: Any) -> tuple[str, int]:
        """Run /code to the end; the interaction token and the new thread's id."""
        token = self.gateway.slash("code", prompt=prompt, **options)
        await settle()
        threads = [c for c in self.fake.calls_to(THREAD)]
        assert threads, self.fake.calls
        return token, int(threads[-1].params["message_id"])

    def final(self, thread_id: int) -> Call:
        """The last send or edit in a thread."""
        return self.fake.in_channel(thread_id)[-1]


async def connect(app: App, fake: FakeDiscord, **options: object) -> Bot:
    adapter = DiscordAdapter.from_app(app, http=fake.http, edit_interval=0.05)
    for name, value in options.items():
        setattr(adapter, name, value)
    await adapter.client.login("test-token")  # setup_hook: buttons, command sync
    gateway = fake.gateway(adapter.client)
    gateway.guild_create()
    return Bot(fake=fake, adapter=adapter, gateway=gateway)


@pytest.fixture
async def bot(app: App) -> AsyncIterator[Bot]:
    bot = await connect(app, FakeDiscord())
    yield bot
    await settle()
    await bot.adapter.aclose()


def components(call: Call) -> list[str]:
    rows = (call.json or {}).get("components") or []
    return [item["custom_id"] for row in rows for item in row["components"]]


def fences_balanced(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```")) % 2 == 0


async def test_setup_publishes_commands(bot: Bot) -> None:
    sync = bot.fake.calls_to("PUT /applications/{application_id}/commands")
    assert [c["name"] for c in sync[0].json] == ["code", "snippets"]
    code = sync[0].json[0]
    assert [o["name"] for o in code["options"]] == ["prompt", "language", "model"]
    assert code["contexts"] == [0]  # servers only: DMs are off by default


async def test_code_defers_opens_a_thread_and_posts_the_version(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("def add(a, b):\n    return a + b", note="Adds.")
    token, thread_id = await bot.code("add two numbers", language="py")

    calls = bot.for_token(token)
    assert calls[0].key == CALLBACK and calls[0].json["type"] == 5  # deferred, thinking
    assert calls[1].key == ORIGINAL and "add two numbers" in calls[1].content
    original = bot.fake.originals[token]
    thread = bot.fake.calls_to(THREAD)[0]
    assert thread.params == {"channel_id": str(CHANNEL_ID), "message_id": original["id"]}
    assert thread.json["name"] == "Python: add two numbers"

    in_thread = bot.fake.in_channel(thread_id)
    assert in_thread[0].key == SEND and "Writing version 1" in in_thread[0].content
    final = in_thread[-1]
    assert final.key == EDIT
    assert "```python\ndef add(a, b):\n    return a + b\n```" in final.content
    assert "Adds." in final.content and "Version 1 of #1" in final.content
    buttons = ["ct:run:1:1", "ct:test:1:1"] if app.runs.can_run else []  # only with a sandbox
    assert components(final) == [*buttons, "ct:delete:1"]

    key = SessionKey(
        platform="discord", workspace=str(GUILD_ID), channel=str(CHANNEL_ID), thread=str(thread_id)
    )
    session = await app.service.find(key)
    assert session is not None and session.owner == ALICE["id"] and session.version_count == 1
    assert app.metrics.events.labels(platform="discord", kind="code")._value.get() == 1


async def test_reply_makes_the_next_version_from_the_current_code(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("write f")
    bot.gateway.thread_create(thread_id)
    reply = bot.gateway.message(thread_id, "return 2 instead")
    await settle()

    last = fake.requests[-1]
    assert "return 1" in last.messages[-2].content  # the current version
    assert last.messages[-1].content == "return 2 instead"
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == reply["id"]  # answers it
    assert "Version 2 of #1" in bot.final(thread_id).content
    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["write f", "return 2 instead"]


async def test_replies_are_answered_in_order(bot: Bot, app: App, fake: FakeEngine) -> None:
    fake.delay = 0.02
    fake.responder = lambda r: fenced(f"# after {r.messages[-1].content}")
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    for i in range(6):
        bot.gateway.message(thread_id, f"step {i}", author=ALICE if i % 2 else BOB)
    await settle()

    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["start"] + [f"step {i}" for i in range(6)]


async def test_a_thread_missing_from_the_cache_is_looked_up(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    _, thread_id = await bot.code("first")  # no THREAD_CREATE: the thread is not cached
    bot.gateway.message(thread_id, "more")
    await settle()
    assert bot.fake.calls_to("GET /channels/{channel_id}")
    assert [v.request for v in await app.store.list_versions(1)] == ["first", "more"]


async def test_ignores_bots_plain_channels_foreign_threads_and_dms(
    bot: Bot, fake: FakeEngine
) -> None:
    _, thread_id = await bot.code("first")
    bot.gateway.thread_create(thread_id)
    foreign = bot.fake.next_id()
    bot.fake.threads[foreign] = {**bot.fake.threads[thread_id], "id": str(foreign)}
    bot.fake.threads[foreign]["owner_id"] = ALICE["id"]
    bot.gateway.thread_create(foreign)
    unused = bot.fake.next_id()  # a thread the bot opened that holds no session
    bot.fake.threads[unused] = {**bot.fake.threads[thread_id], "id": str(unused)}
    bot.gateway.thread_create(unused)
    before, requests = len(bot.fake.calls), len(fake.requests)

    bot.gateway.message(thread_id, "from myself", author=BOT)
    bot.gateway.message(thread_id, "from another bot", author=OTHER_BOT)
    bot.gateway.message(thread_id, "", author=ALICE)  # an image or a sticker
    bot.gateway.message(thread_id, "pinned", kind=6)  # a system message
    bot.gateway.message(CHANNEL_ID, "in the channel itself")
    bot.gateway.message(foreign, "a thread someone else opened")
    bot.gateway.message(unused, "a thread with no session")
    bot.gateway.message(bot.fake.next_id(), "a direct message", guild=False)
    await settle()

    assert len(fake.requests) == requests
    assert bot.fake.calls[before:] == []


async def test_a_long_version_is_sent_as_a_file_with_a_preview(bot: Bot, fake: FakeEngine) -> None:
    code = "\n".join(f"def f{i}(x):\n    return x + {i}  # {'pad' * 10}" for i in range(60))
    fake.responder = lambda r: fenced(code, "rust")
    _, thread_id = await bot.code("many functions", language="rust")

    final = bot.final(thread_id)
    assert final.files == [("snippet.rs", code)]
    assert len(final.content) <= 2000 and fences_balanced(final.content)
    assert "```rust\ndef f0(x):" in final.content and "more lines in the file" in final.content


async def test_streaming_edits_one_message_at_a_steady_pace(bot: Bot, fake: FakeEngine) -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(400))
    fake.responder = lambda r: "Here:\n\n" + fenced(code)
    fake.delay, fake.chunk_size = 0.5, 40
    _, thread_id = await bot.code("stream it")

    in_thread = bot.fake.in_channel(thread_id)
    assert [c.key for c in in_thread].count(SEND) == 1  # one message, edited
    progress = [c for c in in_thread if c.key == EDIT][:-1]
    assert len(progress) >= 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(in_thread[:-1])]  # the result: at once
    assert min(gaps) >= 0.05 * 0.9  # the adapter's interval in these tests
    for call in progress:
        assert len(call.content) <= 2000 and fences_balanced(call.content)
    assert "Version 1" in in_thread[-1].content


async def test_snippets_are_scoped_to_the_caller(bot: Bot, fake: FakeEngine) -> None:
    fake.responder = lambda r: fenced("print('alice')")
    await bot.code("alice's snippet")

    token = bot.gateway.slash("snippets", subcommand="list", user=BOB)
    await settle()
    followup = bot.for_token(token)[-1]
    assert followup.key == FOLLOWUP and followup.json["flags"] & EPHEMERAL
    assert "no snippets" in followup.content

    token = bot.gateway.slash("snippets", subcommand="show", user=BOB, id=1)
    await settle()
    assert "belongs to someone else" in bot.for_token(token)[-1].content

    token = bot.gateway.slash("snippets", subcommand="list", user=ALICE)
    await settle()
    listing = bot.for_token(token)[-1]
    assert listing.json["flags"] & EPHEMERAL and "#1" in listing.content
    assert "alice's snippet" in listing.content

    token = bot.gateway.slash("snippets", subcommand="show", user=ALICE, id=1)
    await settle()
    shown = bot.for_token(token)[-1]
    assert shown.json["flags"] & EPHEMERAL and "print('alice')" in shown.content


async def test_snippets_delete_refuses_someone_elses(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("keep me")
    token = bot.gateway.slash("snippets", subcommand="delete", user=BOB, id=1)
    await settle()
    refusal = bot.for_token(token)[-1]
    assert refusal.json["flags"] & EPHEMERAL
    assert "belongs to someone else; only its owner" in refusal.content
    assert await app.store.get_session(1) is not None

    token = bot.gateway.slash("snippets", subcommand="delete", user=ALICE, id=1)
    await settle()
    assert "Deleted snippet #1" in bot.for_token(token)[-1].content
    assert await app.store.get_session(1) is None
    assert bot.fake.threads[thread_id]["thread_metadata"]["archived"] is True


async def test_delete_button_is_for_the_owner_only(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("a snippet")
    message_id = int(bot.final(thread_id).params["message_id"])

    token = bot.gateway.click(message_id, "ct:delete:1", user=BOB)
    await settle()
    refusal = bot.for_token(token)[-1]
    assert refusal.json["flags"] & EPHEMERAL and "only its owner" in refusal.content
    assert await app.store.get_session(1) is not None

    token = bot.gateway.click(message_id, "ct:delete:1", user=ALICE)
    await settle()
    assert "Deleted snippet #1" in bot.for_token(token)[-1].content
    assert await app.store.get_session(1) is None
    assert "was deleted by its owner" in bot.fake.in_channel(thread_id)[-2].content


async def test_buttons_keep_working_after_a_restart(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("survive a restart")
    message = int(bot.final(thread_id).params["message_id"])
    await settle()
    await bot.adapter.aclose()

    again = await connect(app, bot.fake)  # a new client: no views, no cache from before
    try:
        earlier = bot.fake.posted(thread_id, "ct:fix:1")  # under a failed run, say
        calls = await click(again, earlier, "ct:fix:1")
        assert "Run or test this version first" in calls[-1].content
        token = again.gateway.click(message, "ct:delete:1", user=ALICE)
        await settle()
        assert "Deleted snippet #1" in again.for_token(token)[-1].content
    finally:
        await again.adapter.aclose()


async def test_test_and_fix_keep_working_after_a_restart(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted(
        "def add(a, b):\n    return a - b", PASSING_TESTS, then="def add(a, b):\n    return a + b"
    )
    _, thread_id = await bot.code("add")
    version = message_id(bot.final(thread_id))
    await settle()
    await bot.adapter.aclose()

    again = await connect(app, bot.fake)
    try:
        result = (await click(again, version, "ct:test:1:1"))[-1]
        assert "Tests of version 1 of #1 failed" in result.content
        await again.adapter.aclose()

        third = await connect(app, bot.fake)
        try:
            await click(third, message_id(result), "ct:fix:1")
            assert "Version 2 of #1" in third.final(thread_id).content
            assert "return a + b" in third.final(thread_id).content
        finally:
            await third.adapter.aclose()
    finally:
        await again.adapter.aclose()


def message_id(call: Call) -> int:
    """The id of the message a send, an edit or an interaction's original response left."""
    return int(call.response["id"])


async def click(
    bot: Bot, message: int, custom_id: str, *, user: dict[str, Any] = ALICE
) -> list[Call]:
    """Click a button and wait for the bot to finish; the calls made for that interaction."""
    token = bot.gateway.click(message, custom_id, user=user)
    await settle()
    return bot.for_token(token)


TESTS_SYSTEM = "You write unit tests"


def scripted(code: str, tests: str, then: str | None = None) -> Callable[[GenerationRequest], str]:
    """A responder: ``tests`` when asked for unit tests, else ``code`` (``then`` from a fix)."""

    def respond(request: GenerationRequest) -> str:
        if request.messages[0].content.startswith(TESTS_SYSTEM):
            return fenced(tests)
        fixing = "The current version is broken" in request.messages[-1].content
        return fenced(then if fixing and then is not None else code)

    return respond


PASSING_TESTS = """\
import unittest

from snippet import add


class AddTest(unittest.TestCase):
    def test_adds(self):
        self.assertEqual(add(1, 2), 3)


if __name__ == "__main__":
    unittest.main()"""

#: a long test module (it goes as a file) whose first test fails against ``a - b``
FAILING_TESTS = PASSING_TESTS.replace(
    "        self.assertEqual(add(1, 2), 3)\n",
    "        self.assertEqual(add(1, 2), 3)\n"
    + "".join(
        f"\n    def test_zero_{i}(self):\n        self.assertEqual(add({i}, 0), {i})  # keeps\n"
        for i in range(40)
    ),
)


async def test_run_button_runs_the_version_in_the_sandbox(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced("print(1 + 2)")
    _, thread_id = await bot.code("add")
    final = bot.final(thread_id)
    assert components(final) == ["ct:run:1:1", "ct:test:1:1", "ct:delete:1"]

    calls = await click(bot, message_id(final), "ct:run:1:1", user=BOB)  # anyone in the thread
    assert calls[0].json["type"] == 5  # deferred: public, since a run is worth sharing
    assert calls[-1].key == ORIGINAL
    report = calls[-1].content
    assert report.startswith("Run of version 1 of #1 passed · exit 0 · ")
    assert "stdout:\n```text\n3\n```" in report
    assert components(calls[-1]) == []  # nothing to fix
    [version] = await app.store.list_versions(1)
    [run] = await app.store.list_runs(version.id)
    assert (run.kind, run.status, run.stdout) == ("run", "ok", "3\n")

    token = bot.gateway.slash("snippets", subcommand="run", id=1, version=1)
    await settle()
    answer = bot.for_token(token)[-1]
    assert answer.json["flags"] & EPHEMERAL and "passed · exit 0" in answer.content


async def test_a_failed_run_offers_fix_which_streams_the_next_version_in_the_thread(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    answers = iter([fenced("print(1 / 0)"), fenced("print(1)")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("divide")
    bot.gateway.thread_create(thread_id)

    calls = await click(bot, message_id(bot.final(thread_id)), "ct:run:1:1")
    result = calls[-1]
    assert "Run of version 1 of #1 failed · exit 1" in result.content
    assert "ZeroDivisionError" in result.content
    assert components(result) == ["ct:fix:1"]

    calls = await click(bot, message_id(result), "ct:fix:1", user=BOB)
    assert [c.key for c in calls] == [CALLBACK]  # acknowledged; the version comes in the thread
    assert calls[0].json["type"] == 6
    feedback = fake.requests[-1].messages[-1].content
    assert "it failed when run" in feedback and "ZeroDivisionError" in feedback
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == str(message_id(result))
    final = bot.final(thread_id)
    assert "Version 2 of #1" in final.content and "print(1)" in final.content
    assert components(final) == ["ct:run:1:2", "ct:test:1:2", "ct:delete:1"]
    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["divide", feedback]


async def test_test_button_posts_the_model_written_tests_and_their_result(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted("def add(a, b):\n    return a + b", PASSING_TESTS)
    _, thread_id = await bot.code("add two numbers")

    calls = await click(bot, message_id(bot.final(thread_id)), "ct:test:1:1", user=BOB)
    assert calls[0].key == CALLBACK and calls[0].json["type"] == 5  # deferred at once
    asked = fake.requests[-1].messages
    assert asked[0].content.startswith(TESTS_SYSTEM) and "return a + b" in asked[-1].content
    result = calls[-1]
    assert result.key == ORIGINAL and len(result.content) <= 2000
    assert result.content.startswith("Tests of version 1 of #1 passed · exit 0")
    assert "test_adds (test_snippet.AddTest" in result.content and "OK" in result.content
    assert f"The tests:\n```python\n{PASSING_TESTS}\n```" in result.content  # short: inline
    assert result.files == [] and components(result) == []
    assert fences_balanced(result.content)


async def test_failing_tests_then_fix_makes_the_next_version_from_the_failure(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted(
        "def add(a, b):\n    return a - b", FAILING_TESTS, then="def add(a, b):\n    return a + b"
    )
    _, thread_id = await bot.code("add two numbers")
    bot.gateway.thread_create(thread_id)

    result = (await click(bot, message_id(bot.final(thread_id)), "ct:test:1:1"))[-1]
    assert result.content.startswith("Tests of version 1 of #1 failed · exit 1")
    assert "AssertionError: -1 != 3" in result.content
    assert result.files == [("test_snippet.py", FAILING_TESTS)]  # too long to show inline
    assert "The tests are attached (test_snippet.py)." in result.content
    assert len(result.content) <= 2000 and fences_balanced(result.content)
    assert components(result) == ["ct:fix:1"]

    await click(bot, message_id(result), "ct:fix:1")
    fix = fake.requests[-1].messages
    assert not fix[0].content.startswith(TESTS_SYSTEM)
    assert "return a - b" in fix[-2].content  # the current version, then the feedback
    feedback = fix[-1].content
    assert "its unit tests failed" in feedback and "AssertionError: -1 != 3" in feedback
    assert "def test_adds" in feedback  # the tests that failed come along
    final = bot.final(thread_id)
    assert "Version 2 of #1" in final.content and "return a + b" in final.content

    result = (await click(bot, message_id(final), "ct:test:1:2"))[-1]
    assert result.content.startswith("Tests of version 2 of #1 passed")
    assert components(result) == []


async def test_fix_with_nothing_to_fix_says_so_privately(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("print('fine')")
    _, thread_id = await bot.code("be fine")
    version = bot.final(thread_id)
    earlier = bot.fake.posted(thread_id, "ct:fix:1")  # a failed run's result from before
    requests = len(fake.requests)

    calls = await click(bot, earlier, "ct:fix:1")
    assert calls[-1].key == FOLLOWUP and calls[-1].json["flags"] & EPHEMERAL
    assert "Run or test this version first" in calls[-1].content

    if app.runs.can_run:
        await click(bot, message_id(version), "ct:run:1:1")
        calls = await click(bot, earlier, "ct:fix:1")
        assert calls[-1].json["flags"] & EPHEMERAL
        assert "passed; there is nothing to fix" in calls[-1].content
    assert len(fake.requests) == requests  # the model was not asked
    assert len(await app.store.list_versions(1)) == 1
    assert bot.final(thread_id) == version  # nothing new in the thread


async def test_test_is_refused_for_other_languages_and_older_versions(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced('fn main() { println!("hi"); }', "rust")
    _, thread_id = await bot.code("say hi", language="rust")
    final = bot.final(thread_id)
    assert components(final) == ["ct:run:1:1", "ct:delete:1"]  # no Test for Rust
    calls = await click(bot, bot.fake.posted(thread_id, "ct:test:1:1"), "ct:test:1:1")
    assert [c.key for c in calls] == [CALLBACK, DELETE_ORIGINAL, FOLLOWUP]  # withdrawn
    assert "Tests can be written for JavaScript and Python snippets" in calls[-1].content

    fake.responder = lambda r: fenced(f"print({len(fake.requests)})")
    _, thread_id = await bot.code("count")
    first = message_id(bot.final(thread_id))
    bot.gateway.thread_create(thread_id)
    bot.gateway.message(thread_id, "again")
    await settle()
    calls = await click(bot, first, "ct:test:2:1")
    assert calls[-1].json["flags"] & EPHEMERAL
    assert "press Test under version 2" in calls[-1].content


async def test_without_a_sandbox_there_is_no_run_or_test(tmp_path: Path, fake: FakeEngine) -> None:
    app = await start_app(tmp_path, fake, run_snippets=False)
    bot = await connect(app, FakeDiscord())
    try:
        fake.responder = lambda r: fenced("print(1)")
        _, thread_id = await bot.code("one")
        final = bot.final(thread_id)
        assert components(final) == ["ct:delete:1"]
        earlier = bot.fake.posted(thread_id, "ct:run:1:1", "ct:test:1:1")  # before, with one
        for button in ("ct:run:1:1", "ct:test:1:1"):
            calls = await click(bot, earlier, button)
            assert calls[-1].json["flags"] & EPHEMERAL
            assert "Running snippets is turned off here." in calls[-1].content
    finally:
        await settle()
        await bot.adapter.aclose()
        await app.aclose()


async def test_engine_failure_is_reported_and_can_be_retried(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.fail = EngineUnavailable("The model server answered 500.")
    _, thread_id = await bot.code("write x")
    failure = bot.final(thread_id)
    assert "The model server answered 500." in failure.content and "Retry" in failure.content
    assert components(failure) == ["ct:retry:1", "ct:delete:1"]

    fake.fail = None
    fake.responder = lambda r: fenced("x = 1")
    bot.gateway.thread_create(thread_id)
    bot.gateway.click(int(failure.params["message_id"]), "ct:retry:1", user=ALICE)
    await settle()
    assert [v.request for v in await app.store.list_versions(1)] == ["write x"]
    assert "x = 1" in bot.final(thread_id).content


async def test_missing_thread_permission_is_refused_before_anything_is_posted(
    bot: Bot, app: App
) -> None:
    allowed = discord.Permissions(view_channel=True, send_messages=True)
    token = bot.gateway.slash("code", prompt="hello", permissions=str(allowed.value))
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["type"] == 4 and answer.json["data"]["flags"] & EPHEMERAL
    assert "Create Public Threads" in answer.content and "hello" in answer.content
    assert await app.store.list_sessions() == []


async def test_thread_creation_refused_by_discord_is_a_clear_message(bot: Bot, app: App) -> None:
    bot.fake.fail_next(THREAD, http_error(403, "Missing Permissions", 50013))
    token = bot.gateway.slash("code", prompt="print hello")
    await settle()
    keys = [c.key for c in bot.for_token(token)]
    assert keys == [CALLBACK, ORIGINAL, DELETE_ORIGINAL, FOLLOWUP]  # the public post withdrawn
    message = bot.for_token(token)[-1]
    assert message.json["flags"] & EPHEMERAL
    assert "missing a permission (Missing Permissions)" in message.content
    assert "print hello" in message.content  # the request, to send again
    assert await app.store.list_sessions() == []


async def test_unknown_language_is_refused_ephemerally(bot: Bot) -> None:
    token = bot.gateway.slash("code", prompt="hi", language="klingon")
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["data"]["flags"] & EPHEMERAL
    assert "Unknown language 'klingon'" in answer.content and "python" in answer.content


async def test_result_is_posted_anew_when_its_edit_is_rate_limited(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("y = 2")
    bot.fake.fail_next(EDIT, discord.RateLimited(40.0), times=10)
    _, thread_id = await bot.code("y")
    final = bot.final(thread_id)
    assert final.key == SEND and "y = 2" in final.content  # nothing lost


async def test_autocomplete_offers_languages_and_models(bot: Bot) -> None:
    token = bot.gateway.slash("code", prompt="x", language="ru", focused="language")
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["type"] == 8
    assert [c["value"] for c in answer.json["data"]["choices"]] == ["rust", "ruby"]

    token = bot.gateway.slash("code", prompt="x", model="gpt", focused="model")
    await settle()
    names = [c["value"] for c in bot.for_token(token)[0].json["data"]["choices"]]
    assert names == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]


async def test_direct_messages_when_allowed(app: App, fake: FakeEngine) -> None:
    bot = await connect(app, FakeDiscord(), allow_dms=True)
    try:
        dm = bot.fake.next_id()
        fake.responder = lambda r: fenced(f"# {r.messages[-1].content}")
        bot.gateway.slash("code", prompt="in a dm", channel_id=dm, dm=True)
        await settle()
        bot.gateway.message(dm, "adjust it", guild=False)
        await settle()
        versions = await app.store.list_versions(1)
        assert [v.request for v in versions] == ["in a dm", "adjust it"]
        assert "# adjust it" in bot.fake.in_channel(dm)[-1].content
    finally:
        await settle()
        await bot.adapter.aclose()


async def test_start_runs_in_the_background_through_discord_api_url(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with DiscordServer() as server:
        config = dataclasses.replace(app.config, discord_api_url=server.api_url)
        adapter = DiscordAdapter.from_app(dataclasses.replace(app, config=config))
        try:
            await asyncio.wait_for(adapter.start(), 0.5)  # returns while connecting goes on
            await asyncio.wait_for(server.identified.wait(), 5)
            assert [(m, p) for m, p, _ in server.requests] == [
                ("GET", "/users/@me"),
                ("GET", "/oauth2/applications/@me"),
                ("PUT", f"/applications/{APP_ID}/commands"),  # synced in setup_hook
                ("GET", "/gateway/bot"),  # the gateway URL comes from the proxy too
            ]
            assert {auth for _, _, auth in server.requests} == {"Bot test-token"}
            assert server.identify is not None
            intents = discord.Intents(server.identify["d"]["intents"])
            assert intents.guilds and intents.guild_messages and intents.message_content
            assert not intents.dm_messages and not intents.members

            # an interaction's callback goes to the proxy as well
            payload = interaction_payload(
                7,
                4,
                {
                    "id": "1",
                    "name": "code",
                    "type": 1,
                    "options": [{"name": "language", "type": 3, "value": "py", "focused": True}],
                },
                user=ALICE,
                channel={"id": "5", "type": 1, "recipients": [ALICE]},
            )
            await server.dispatch("INTERACTION_CREATE", payload)
            await asyncio.wait_for(server.callback.wait(), 5)
            assert server.requests[-1][:2] == ("POST", "/interactions/7/token-7/callback")
            assert server.bodies[-1]["data"]["choices"][0]["value"] == "python"
        finally:
            await adapter.aclose()
    assert "test-token" not in caplog.text


async def test_a_reply_right_after_the_thread_opens_comes_after_the_first_turn(
    bot: Bot, app: App
) -> None:
    bot.gateway.slash("code", prompt="first")
    thread = await bot.fake.first_call(THREAD)  # the thread exists; the session is being stored
    thread_id = int(thread.params["message_id"])
    bot.gateway.message(thread_id, "right away")
    await settle()
    assert [v.request for v in await app.store.list_versions(1)] == ["first", "right away"]


async def test_snippet_ids_autocomplete_from_the_callers_sessions(bot: Bot) -> None:
    await bot.code("alice's snippet")
    for user, expected in ((ALICE, [1]), (BOB, [])):
        token = bot.gateway.slash(
            "snippets", subcommand="show", user=user, focused="id", id="alice"
        )
        await settle()
        choices = bot.for_token(token)[0].json["data"]["choices"]
        assert [c["value"] for c in choices] == expected


def _report(result: RunResult, *, tests: str = "") -> RunReport:
    session = Session(
        id=4, key=SessionKey(platform="discord", workspace="g", channel="c", thread="t"),
        owner="u", language="python", model="m", title="t", created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    version = Version(
        id=1, session_id=4, number=2, request="r", code="print()", note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=5, status="ok", created_at=0.0,
    )  # fmt: skip
    kind: Literal["run", "test"] = "test" if tests else "run"
    return RunReport(session=session, version=version, result=result, kind=kind, tests=tests)


def test_a_run_report_fits_one_message_with_its_fences_whole() -> None:
    result = RunResult(
        status="limit",
        exit_code=None,
        stdout="out\n" * 2000 + "```",
        stderr="Traceback\n" * 300 + "MemoryError",
        duration_ms=1500,
        limit_hit="memory",
        truncated=True,
    )
    text, attachment = run_message(_report(result), Languages().get("python"))
    assert attachment is None and len(text) <= 2000
    assert text.startswith(
        "Run of version 2 of #4 was stopped by a limit · no exit code · 1.50 s · "
        "limit hit: memory · output truncated\n"
    )
    assert text.endswith("MemoryError\n```")
    assert "stdout:\n…\n````text\nout\n" in text and "out\n```\n````\n" in text  # fence > ```


def test_tests_go_inline_when_everything_fits_else_as_their_file() -> None:
    python, javascript = Languages().get("python"), Languages().get("javascript")
    result = RunResult(status="ok", exit_code=0, stdout="", stderr="OK\n", duration_ms=90)
    text, attachment = run_message(_report(result, tests="import unittest"), python)
    assert attachment is None
    assert text.startswith("Tests of version 2 of #4 passed")
    assert text.endswith("The tests:\n```python\nimport unittest\n```")

    long = "test('x', () => {});\n" * 200
    failed = dataclasses.replace(result, status="failed", exit_code=1, stderr="not ok\n" * 500)
    text, attachment = run_message(_report(failed, tests=long), javascript)
    assert attachment == ("snippet.test.js", long)
    assert len(text) <= 2000 and fences_balanced(text)
    assert text.endswith("not ok\n```\nThe tests are attached (snippet.test.js).")


async def test_serve_makes_the_discord_adapter_when_its_token_is_set(app: App) -> None:
    from bot.server import make_adapters

    [adapter] = make_adapters(app)
    try:
        assert isinstance(adapter, DiscordAdapter) and adapter.routes() == []
        assert "test-token" not in repr(adapter)
    finally:
        await adapter.aclose()
