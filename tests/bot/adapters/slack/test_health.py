"""What ``/readyz`` says of Slack: connected once the token is accepted, failed for good (with
the fix, and no retrying) when Slack refuses it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engines import FakeEngine
from tests.bot.adapters.slack.harness import Bot, config, running
from tests.fakes.slack_api import FakeSlack


async def _settled(bot: Bot) -> None:
    async with asyncio.timeout(5):
        while bot.adapter.health.state == "starting":
            await asyncio.sleep(0.01)


async def test_an_accepted_token_is_connected(bot: Bot) -> None:
    await _settled(bot)
    body = await (await bot.http.get("/readyz")).json()
    assert body["checks"]["slack"] == {"ok": True, "detail": "connected"}


async def test_a_refused_token_fails_the_adapter_once_and_readyz_says_why(
    tmp_path: Path, slack: FakeSlack, engine: FakeEngine
) -> None:
    slack.fail("auth.test", "invalid_auth", times=100)
    async with running(config(tmp_path, slack), slack, engine) as bot:
        await _settled(bot)
        ready = await bot.http.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert body["checks"]["slack"]["detail"] == (
            "failed: the bot token was refused (invalid_auth): set SLACK_BOT_TOKEN to the "
            "app's xoxb- token (OAuth & Permissions)"
        )
        await asyncio.sleep(0.2)
        assert len(slack.calls_to("auth.test")) == 1  # no retrying in a loop
        live = await bot.http.get("/livez")
        assert live.status == 200  # the process goes on
