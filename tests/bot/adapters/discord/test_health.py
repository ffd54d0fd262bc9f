"""The connection's health for /readyz, through a real gateway on loopback, and Discord's 429s
in the metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.base import AdapterHealth
from bot.adapters.discord import DiscordAdapter
from bot.adapters.discord.adapter import BAD_TOKEN, FATAL_CLOSES, NO_MESSAGE_CONTENT
from bot.app import App, build
from bot.config import Config
from bot.server import make_web_app
from engines import FakeEngine
from tests.fakes.discord_fakes import ALICE, DiscordServer, interaction_payload


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


@dataclasses.dataclass
class Running:
    app: App
    adapter: DiscordAdapter


Start = Callable[[str], Awaitable[Running]]


@pytest.fixture
async def running(config: Config) -> AsyncIterator[Start]:
    """Builds the app against ``api_url`` and starts its Discord adapter; closes it after."""
    apps: list[App] = []

    async def make(api_url: str) -> Running:
        app = await build(
            dataclasses.replace(config, discord_api_url=api_url),
            engine_factory=lambda spec: FakeEngine(),
        )
        apps.append(app)
        await app.start()
        [adapter] = app.adapters
        assert isinstance(adapter, DiscordAdapter)
        adapter.client._connection.guild_ready_timeout = 0  # READY has no guilds to wait for
        await adapter.start()
        return Running(app, adapter)

    yield make
    for app in apps:
        await app.aclose()


async def readyz(app: App) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        answer = await client.get("/readyz")
        return answer.status, await answer.json()


async def test_connected_once_ready_starting_while_it_reconnects(running: Start) -> None:
    async with DiscordServer() as server:
        bot = await running(server.api_url)
        assert bot.adapter.health.state == "starting"
        await until(lambda: bot.adapter.health == AdapterHealth("connected"))
        status, body = await readyz(bot.app)
        assert status == 200, body
        assert body["checks"]["discord"] == {"ok": True, "detail": "connected"}

        server.open.clear()  # the next connection hangs before HELLO
        await server.drop(4000)  # an unknown error: discord.py resumes
        await until(lambda: bot.adapter.health.state == "starting")
        assert bot.adapter.health.reason == "connecting to the gateway"
        status, body = await readyz(bot.app)
        assert status == 503 and not body["checks"]["discord"]["ok"]
        server.open.set()
        await until(lambda: bot.adapter.health.state == "connected")
        assert server.resumed.is_set() and len(server.identifies) == 1  # resumed, not anew


async def test_a_refused_token_fails_for_good_and_readyz_names_it(
    running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    async with DiscordServer(refuse_token=True) as server:
        bot = await running(server.api_url)
        await until(lambda: bot.adapter.health.state == "failed")
        assert bot.adapter.health.reason == BAD_TOKEN
        assert "DISCORD_BOT_TOKEN" in BAD_TOKEN and "bot's page" in BAD_TOKEN
        status, body = await readyz(bot.app)
        assert status == 503
        checks = body["checks"]
        assert checks["discord"] == {"ok": False, "detail": f"failed: {BAD_TOKEN}"}
        assert checks["database"]["ok"] and checks["model"]["ok"]
        await asyncio.sleep(0.2)
        logins = [p for _, p, _ in server.requests if p == "/users/@me"]
        assert logins == ["/users/@me"] and server.identifies == []  # no retry, no gateway
        assert bot.adapter.client.is_closed() and bot.adapter._task is not None
        assert bot.adapter._task.done() and bot.adapter._task.exception() is None
    assert f"the Discord adapter is off: {BAD_TOKEN}" in caplog.text


@pytest.mark.parametrize("code", [4014, 4004, 4010, 4011, 4012, 4013])
async def test_a_fatal_gateway_close_fails_with_its_fix(running: Start, code: int) -> None:
    async with DiscordServer(close_with=code) as server:
        bot = await running(server.api_url)
        await until(lambda: bot.adapter.health.state == "failed")
        reason = bot.adapter.health.reason
        assert reason == FATAL_CLOSES[code]
        if code == 4014:
            assert reason == NO_MESSAGE_CONTENT and "Message Content intent" in reason
            assert "Developer Portal" in reason
        await asyncio.sleep(0.2)
        assert len(server.identifies) == 1  # never again
        assert bot.adapter.client.is_closed()
        status, body = await readyz(bot.app)
        assert status == 503
        assert body["checks"]["discord"]["detail"] == f"failed: {reason}"


async def test_discord_out_of_reach_at_start_is_tried_again_then_fails(
    running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    bot = await running(f"http://127.0.0.1:{port}/api/v10")
    bot.adapter.login_retries = (0.01, 0.01)  # read at the first failure, after start
    await until(lambda: bot.adapter.health.state == "failed")
    reason = bot.adapter.health.reason
    assert reason.startswith("Discord could not be reached at start (")
    assert reason.endswith("check DISCORD_API_URL, then restart")
    assert caplog.text.count("could not reach Discord") == 2
    assert bot.adapter._task is not None and bot.adapter._task.exception() is None


async def test_every_429_from_discord_is_counted(
    running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with DiscordServer() as server:
        server.throttle("/users/@me")  # the login, waited out by discord.py
        server.throttle("/interactions/7/token-7/callback", times=2)  # an interaction callback
        bot = await running(server.api_url)
        await until(lambda: bot.adapter.health.state == "connected")
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
        assert server.throttled == ["/users/@me", *["/interactions/7/token-7/callback"] * 2]
        throttled = bot.app.metrics.throttled.labels(platform="discord")
        assert throttled._value.get() == 3
        text = bot.app.metrics.render().decode()
        assert 'codethread_platform_throttled_total{platform="discord"} 3.0' in text
