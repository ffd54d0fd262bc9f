"""The Discord adapter against real discord.py objects, offline (see tests/fakes/discord_fakes)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest

from bot.adapters.discord_adapter import DiscordAdapter
from bot.app import App, build
from bot.config import Config
from bot.core import SessionService
from bot.values import Caller, RunReport
from engines import Engine, EngineUnavailable, FakeEngine, ModelSpec
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


@pytest.fixture
async def app(tmp_path: Path, fake: FakeEngine) -> AsyncIterator[App]:
    def factory(spec: ModelSpec) -> Engine:
        return fake

    config = Config(
        db_path=tmp_path / "ct.db",
        model="fake:echo",
        rate_limit_per_minute=0,
        discord_bot_token="test-token",
    )
    app = await build(config, engine_factory=factory)
    await app.start()
    yield app
    await app.aclose()


@dataclass
class Bot:
    fake: FakeDiscord
    adapter: DiscordAdapter
    gateway: FakeGateway

    def for_token(self, token: str) -> list[Call]:
        return [c for c in self.fake.calls if c.params.get("webhook_token") == token]

    async def code(self, prompt: str, **options: object) -> tuple[str, int]:
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
    assert components(final) == ["ct:delete:1"]  # no Run without a sandbox

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
    message_id = int(bot.final(thread_id).params["message_id"])
    await settle()
    await bot.adapter.aclose()

    again = await connect(app, bot.fake)  # a new client: no views, no cache from before
    try:
        token = again.gateway.click(message_id, "ct:delete:1", user=ALICE)
        await settle()
        assert "Deleted snippet #1" in again.for_token(token)[-1].content
    finally:
        await again.adapter.aclose()


class SandboxedService(SessionService):
    """The real service, with a stand-in sandbox that always prints the same thing."""

    @property
    def can_run(self) -> bool:
        return True

    async def run(self, session_id: int, caller: Caller, *, number: int | None = None) -> RunReport:
        session, version = await self.show(session_id, number=number)
        assert version is not None
        result = RunResult(
            status="ok",
            exit_code=0,
            stdout="3\n",
            stderr="",
            duration_ms=42,
            peak_memory_kb=10_240,
        )
        return RunReport(session=session, version=version, result=result)


async def test_run_button_posts_the_result(app: App, fake: FakeEngine) -> None:
    service = SandboxedService(
        store=app.store,
        engines=app.engines,
        languages=app.service.languages,
        settings=app.service.settings,
        metrics=app.metrics,
    )
    bot = await connect(dataclasses.replace(app, service=service), FakeDiscord())
    try:
        fake.responder = lambda r: fenced("print(1 + 2)")
        _, thread_id = await bot.code("add")
        final = bot.final(thread_id)
        assert components(final) == ["ct:run:1:1", "ct:delete:1"]

        token = bot.gateway.click(int(final.params["message_id"]), "ct:run:1:1", user=BOB)
        await settle()
        calls = bot.for_token(token)
        assert calls[0].json["type"] == 5  # deferred: public, since a run is worth sharing
        assert calls[-1].key == ORIGINAL
        report = calls[-1].content
        assert "**ok** · exit 0 · 0.04 s · peak 10.0 MB" in report
        assert "stdout:\n```text\n3\n```" in report

        token = bot.gateway.slash("snippets", subcommand="run", id=1, version=1)
        await settle()
        answer = bot.for_token(token)[-1]
        assert answer.json["flags"] & EPHEMERAL and "exit 0" in answer.content
    finally:
        await settle()
        await bot.adapter.aclose()


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


def test_a_run_report_fits_one_message_with_its_fences_whole() -> None:
    from bot.adapters.discord_views import render_run

    session = Session(
        id=4, key=SessionKey(platform="discord", workspace="g", channel="c", thread="t"),
        owner="u", language="python", model="m", title="t", created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    version = Version(
        id=1, session_id=4, number=2, request="r", code="print()", note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=5, status="ok", created_at=0.0,
    )  # fmt: skip
    result = RunResult(
        status="limit",
        exit_code=None,
        stdout="out\n" * 2000 + "```",
        stderr="Traceback\n" * 300 + "MemoryError",
        duration_ms=1500,
        limit_hit="memory",
        truncated=True,
    )
    text = render_run(RunReport(session=session, version=version, result=result), limit=2000)
    assert len(text) <= 2000
    assert text.startswith("▶️ Run of version 2 of #4: **limit** · no exit code · 1.50 s")
    assert "limit hit: memory · output truncated" in text and text.endswith("MemoryError\n```")
    assert "stdout:\n````text\n…\nout\n" in text and "out\n```\n````\n" in text  # fence > ```


async def test_serve_makes_the_discord_adapter_when_its_token_is_set(app: App) -> None:
    from bot.server import make_adapters

    [adapter] = make_adapters(app)
    try:
        assert isinstance(adapter, DiscordAdapter) and adapter.routes() == []
        assert "test-token" not in repr(adapter)
    finally:
        await adapter.aclose()
