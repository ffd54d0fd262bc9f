"""View history: with a public URL set, every version offers it, and a press tells the person
who pressed it (only them) a one-time link that signs them in to the web page as themselves."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.config import PublicUrl
from bot.web.auth import read_link, site_key
from engines import FakeEngine
from tests.bot.adapters.slack.harness import Bot, config, running
from tests.fakes.slack_api import TEAM, FakeSlack

URL = "https://bot.example.com"


@pytest.fixture
async def bot(tmp_path: Path, slack: FakeSlack, engine: FakeEngine) -> AsyncIterator[Bot]:
    settings = dataclasses.replace(config(tmp_path, slack), public_url=PublicUrl(URL))
    async with running(settings, slack, engine) as bot:
        yield bot


async def test_view_history_tells_the_presser_a_one_time_link_of_their_own(bot: Bot) -> None:
    parent = await bot.start_session("say hi")
    [version] = bot.slack.thread("C1", parent.ts)
    assert "codethread_history" in version.action_ids()

    await bot.click("codethread_history", version, user="U2")  # not the owner: their own

    [told] = bot.slack.ephemerals
    body = json.dumps(told["blocks"])
    assert told["user"] == "U2" and "yours alone" in body
    [link] = re.findall(r"https://bot\.example\.com/login\?t=[^>|)\s\"]+", body)
    token = parse_qs(urlsplit(link).query)["t"][0]
    key = await site_key(bot.app.store)
    grant = await read_link(key, bot.app.store, token)
    assert grant is not None
    assert (grant.caller.platform, grant.caller.workspace, grant.caller.user) == (
        "slack", TEAM, "U2"
    )  # fmt: skip
    assert await read_link(key, bot.app.store, token) is None  # once only
    assert len(bot.slack.thread("C1", parent.ts)) == 1  # nothing public was posted


async def test_without_a_public_url_no_version_offers_it(
    tmp_path: Path, slack: FakeSlack, engine: FakeEngine
) -> None:
    async with running(config(tmp_path, slack), slack, engine) as plain:
        parent = await plain.start_session("say hi")
        [version] = plain.slack.thread("C1", parent.ts)
        assert "codethread_history" not in version.action_ids()
