"""The Discord adapter against real discord.py objects, offline (see tests/fakes/discord_fakes).

``bot`` is a whole app built from a config with a Discord token (``build`` makes the adapter),
talking to a :class:`~tests.fakes.discord_fakes.FakeDiscord`; :meth:`Bot.restart` builds it
again from the same config and database, as a new process would. Its thread messages are
turns in process (the adapter without a worker) unless connected ``durable=True``: then they,
button presses and ``/code`` are jobs that the app's worker performs once :meth:`Bot.work` has
started it (:meth:`Bot.code` and :meth:`Bot.press` then wait for their jobs), and
:func:`take_over` has a new worker take over what a dead replica claimed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.app import App, build
from bot.config import Config
from bot.jobs import Worker
from engines import FakeEngine, GenerationRequest
from tests.fakes.discord_fakes import ALICE, Call, FakeDiscord, FakeGateway, settle

from ...conftest import fenced

CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
DELETE_ORIGINAL = "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/@original"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"
SEND = "POST /channels/{channel_id}/messages"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
EPHEMERAL = 64
V2 = 1 << 15  # IS_COMPONENTS_V2


@dataclass
class Bot:
    app: App
    fake: FakeDiscord
    adapter: DiscordAdapter
    gateway: FakeGateway
    engine: FakeEngine

    def work(self, *, stale_after: float | None = None) -> None:
        """Start the worker performing the adapter's jobs (a durable bot: see connect); from
        now on ``settle`` would wait for it forever: wait with :meth:`jobs_done`."""
        worker = self.adapter.worker
        assert worker is not None, "connect the bot with durable=True"
        if stale_after is not None:
            worker.stale_after = stale_after
        self.adapter.work()

    async def jobs_done(self, count: int, seconds: float = 10.0) -> None:
        """Until ``count`` jobs are done and the worker is idle."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while await self.app.store.count_jobs("done") < count:
            assert loop.time() < deadline, f"{count} job(s) not done in {seconds} s"
            await asyncio.sleep(0.02)
        assert self.adapter.worker is not None
        await self.adapter.worker.idle()

    async def stop_working(self) -> None:
        if self.adapter.worker is not None:
            await self.adapter.worker.stop()

    def for_token(self, token: str) -> list[Call]:
        return [c for c in self.fake.calls if c.params.get("webhook_token") == token]

    async def code(self, prompt: str, **options: Any) -> tuple[str, int]:
        """Run /code to the end (a durable bot's: its job, the worker started); the
        interaction token and the new thread's id."""
        if self.adapter.worker is not None:
            done = await self.app.store.count_jobs("done")
            token = self.gateway.slash("code", prompt=prompt, **options)
            await self.jobs_done(done + 1)
        else:
            token = self.gateway.slash("code", prompt=prompt, **options)
            await settle()
        threads = self.fake.calls_to(THREAD)
        assert threads, self.fake.calls
        return token, int(threads[-1].params["message_id"])

    def final(self, thread_id: int) -> Call:
        """The last send or edit in a thread."""
        return self.fake.in_channel(thread_id)[-1]

    async def click(
        self, message: int, custom_id: str, *, user: dict[str, Any] = ALICE
    ) -> list[Call]:
        """Click a button and wait for the bot to finish; the calls made for that interaction."""
        token = self.gateway.click(message, custom_id, user=user)
        await settle()
        return self.for_token(token)

    async def press(self, message: int, custom_id: str, *, user: dict[str, Any] = ALICE) -> str:
        """Click a button of a durable bot (its worker started) and wait for its job; the
        interaction's token."""
        done = await self.app.store.count_jobs("done")
        token = self.gateway.click(message, custom_id, user=user)
        await self.jobs_done(done + 1)
        return token

    async def restart(self, *, durable: bool = False) -> None:
        """Stop the whole app and build it again from its config and database."""
        if self.adapter.worker is not None:
            await self.stop_working()
        else:
            await settle()
        await self.app.aclose()
        again = await connect(self.app.config, self.engine, self.fake, durable=durable)
        self.app, self.adapter, self.gateway = again.app, again.adapter, again.gateway


async def connect(
    config: Config, engine: FakeEngine, fake: FakeDiscord, *, durable: bool = False
) -> Bot:
    app = await build(config, engine_factory=lambda spec: engine, discord_http=fake.http)
    await app.start()  # probes the sandbox: Run and Test appear where bubblewrap works
    [adapter] = app.adapters
    assert isinstance(adapter, DiscordAdapter)
    assert adapter.worker is app.worker is not None  # serve's: thread messages are jobs
    if not durable:
        adapter.worker = None  # the in-process path
    await adapter.client.login("test-token")  # setup_hook: the buttons (no command sync)
    await fake.serve_cdn()  # attachments people post are downloaded from 127.0.0.1
    gateway = fake.gateway(adapter.client)
    gateway.guild_create()
    return Bot(app=app, fake=fake, adapter=adapter, gateway=gateway, engine=engine)


async def take_over(bot: Bot) -> Worker:
    """The app's worker stopped, a new worker of this process takes over the job a dead
    replica claimed, once its heartbeat is stale, and finishes it (its own kept fresh), and
    any job still queued."""
    await bot.stop_working()
    store = bot.app.store
    taker = Worker(store, stale_after=0.5, heartbeat_every=0.05)
    bot.adapter.worker = taker
    bot.adapter.work()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while await store.count_jobs("running") or await store.count_jobs("queued"):
            assert loop.time() < deadline, "the dead replica's job was not taken over"
            await asyncio.sleep(0.05)
        await taker.idle()
    finally:
        await taker.stop(drain=5)
    return taker


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        db_path=tmp_path / "ct.db",
        model="fake:echo",
        rate_limit_per_minute=0,
        discord_bot_token="test-token",
        edit_interval=0.05,
    )


Connect = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def connected(config: Config, fake: FakeEngine) -> AsyncIterator[Connect]:
    """Connects bots with settings of their own (``run_snippets=False``, …); closes them."""
    bots: list[Bot] = []

    async def make(*, durable: bool = False, **settings: Any) -> Bot:
        bot = await connect(
            dataclasses.replace(config, **settings), fake, FakeDiscord(), durable=durable
        )
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop_working()
    await settle()
    for bot in bots:
        await bot.app.aclose()
        await bot.fake.aclose()
    for bot in bots:  # every message sent was one Discord accepts
        assert bot.fake.refused == []


@pytest.fixture
async def bot(connected: Connect) -> Bot:
    return await connected()


@pytest.fixture
def app(bot: Bot) -> App:
    return bot.app


@pytest.fixture
def needs_sandbox(app: App) -> None:
    """Skips a test that runs code when the sandbox does not work here."""
    if not app.runs.can_run:
        pytest.skip("no working sandbox here (bubblewrap missing, or namespaces refused)")


def _walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for c in components for d in [c, *_walk(c.get("components") or [])]]


def components(call: Call) -> list[str]:
    """The custom ids of a message's buttons, in order (in a V2 layout, wherever they are)."""
    return [c["custom_id"] for c in _walk(call.body.get("components") or []) if c["type"] == 2]


def layout(call: Call) -> list[int]:
    """The component types of a message, depth first (17 container, 10 text, 13 file, …)."""
    return [c["type"] for c in _walk(call.body.get("components") or [])]


def fences_balanced(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```")) % 2 == 0


def message_id(call: Call) -> int:
    """The id of the message a send, an edit or an interaction's original response left."""
    return int(call.response["id"])


TESTS_SYSTEM = "You write unit tests"


def scripted(code: str, tests: str, then: str | None = None) -> Callable[[GenerationRequest], str]:
    """A responder: ``tests`` when asked for unit tests, else ``code`` (``then`` from a fix)."""

    def respond(request: GenerationRequest) -> str:
        if request.messages[0].content.startswith(TESTS_SYSTEM):
            return fenced(tests)
        fixing = "The current version is broken" in request.messages[-1].content
        return fenced(then if fixing and then is not None else code)

    return respond


BROKEN_ADD = "def add(a, b):\n    return a - b"
FIXED_ADD = "def add(a, b):\n    return a + b"
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
