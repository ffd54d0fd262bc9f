"""Fixtures of the Slack tests: a fake Slack, a scripted engine, the running bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engines import FakeEngine
from tests.bot.adapters.slack.harness import TOKEN, Bot, config, running
from tests.bot.conftest import fenced
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:  # files are served to the bot alone
        yield fake
    assert fake.invalid == []  # no message here was one that Slack refuses


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(lambda request: fenced("print('hi')", note="Here it is."))


@pytest.fixture
async def bot(tmp_path: Path, slack: FakeSlack, engine: FakeEngine) -> AsyncIterator[Bot]:
    async with running(config(tmp_path, slack), slack, engine) as bot:
        yield bot
