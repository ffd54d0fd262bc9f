"""Sharding: the settings, and the client that holds one gateway connection per owned shard."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.adapters.discord import DiscordAdapter
from bot.app import App, build
from bot.config import Config, load_config
from bot.errors import ConfigError
from engines import FakeEngine
from tests.fakes.discord_fakes import DiscordServer


def test_shard_settings_from_the_environment_and_the_toml_file(tmp_path: Path) -> None:
    config = load_config({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "0, 2,"})
    assert (config.discord_shard_count, config.discord_shard_ids) == (4, (0, 2))
    unset = load_config({"DISCORD_SHARD_COUNT": "", "DISCORD_SHARD_IDS": ""})
    assert (unset.discord_shard_count, unset.discord_shard_ids) == (None, ())
    toml = tmp_path / "config.toml"
    toml.write_text("discord_shard_count = 2\ndiscord_shard_ids = [1]\n")
    config = load_config({"CODETHREAD_CONFIG": str(toml)})
    assert (config.discord_shard_count, config.discord_shard_ids) == (2, (1,))
    env = {"CODETHREAD_CONFIG": str(toml), "DISCORD_SHARD_IDS": "0"}
    assert load_config(env).discord_shard_ids == (0,)  # the environment wins


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"DISCORD_SHARD_COUNT": "two"}, "", r"^DISCORD_SHARD_COUNT must be a whole number"),
        ({"DISCORD_SHARD_IDS": "0;1"}, "", r"^DISCORD_SHARD_IDS must be shard numbers separated"),
        ({"DISCORD_SHARD_IDS": "-1"}, "", r"^DISCORD_SHARD_IDS must be shard numbers"),
        ({}, "discord_shard_count = '2'", r"discord_shard_count must be an integer"),
        ({}, "discord_shard_ids = 1", r"discord_shard_ids must be a list of shard numbers"),
        ({}, "discord_shard_ids = [true]", r"discord_shard_ids must be a list of shard numbers"),
    ],
)
def test_bad_shard_settings_are_refused_by_name(
    tmp_path: Path, env: dict[str, str], toml: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config({**env, "CODETHREAD_CONFIG": str(path)})


@pytest.fixture
async def parts(config: Config) -> AsyncIterator[App]:
    """An app without adapters: the parts a DiscordAdapter is made of."""
    app = await build(config, engine_factory=lambda spec: FakeEngine(), adapters=False)
    yield app
    await app.aclose()


def adapter(app: App, **settings: Any) -> DiscordAdapter:
    made = DiscordAdapter(
        sessions=app.service,
        presenter=app.presenter,
        metrics=app.metrics,
        token="test-token",
        **settings,
    )
    app.adapters.append(made)  # closed with the app
    return made


async def test_without_shard_settings_one_plain_connection(parts: App) -> None:
    made = adapter(parts)
    assert not isinstance(made.client, discord.AutoShardedClient)
    assert made.client.shard_count is None and made.shards == (0,)


async def test_the_client_gets_the_shards_it_owns(parts: App) -> None:
    made = adapter(parts, shard_count=4, shard_ids=(1, 3))
    client = made.client
    assert isinstance(client, discord.AutoShardedClient)
    assert client.shard_count == 4 and client.shard_ids == [1, 3]
    assert "shards=[1, 3]" in repr(made)
    every = adapter(parts, shard_count=3).client  # no ids: every shard, in this process
    assert isinstance(every, discord.AutoShardedClient) and every.shard_ids == [0, 1, 2]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shard_ids": (0,)}, r"DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        ({"shard_count": 2, "shard_ids": (1, 2, 5)}, r"DISCORD_SHARD_IDS 2,5 is not a shard of"),
        ({"shard_count": 0}, r"DISCORD_SHARD_COUNT must be 1 or more"),
    ],
)
async def test_shards_discord_would_refuse_are_a_config_error(
    parts: App, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        adapter(parts, **settings)


async def test_each_owned_shard_identifies_and_health_waits_for_all(parts: App) -> None:
    async with DiscordServer() as server:
        made = adapter(parts, api_url=server.api_url, shard_count=2, shard_ids=(1,))
        made.client._connection.guild_ready_timeout = 0  # READY has no guilds to wait for
        await made.start()
        await asyncio.wait_for(server.identified.wait(), 5)
        assert server.identify is not None and server.identify["d"]["shard"] == [1, 2]
        async with asyncio.timeout(5):
            while made.health.state != "connected":
                await asyncio.sleep(0.01)
        # with shards, health is connected only while every owned shard is
        made.gateway(1, up=False)
        assert made.health.state == "starting"
        made.gateway(1, up=True)
        assert made.health.state == "connected"

    two = adapter(parts, shard_count=4, shard_ids=(0, 2))
    two.gateway(0, up=True)
    assert (two.health.state, two.health.reason) == ("starting", "connecting shard(s) 2")
    two.gateway(2, up=True)
    assert two.health.state == "connected"


async def test_build_passes_the_config_on(config: Config) -> None:
    app = await build(
        dataclasses.replace(config, discord_shard_count=2, discord_shard_ids=(0,)),
        engine_factory=lambda spec: FakeEngine(),
    )
    try:
        [made] = app.adapters
        assert isinstance(made, DiscordAdapter)
        assert isinstance(made.client, discord.AutoShardedClient)
        assert made.client.shard_count == 2 and made.client.shard_ids == [0]
    finally:
        await app.aclose()


async def test_a_shard_refused_for_good_fails_the_adapter(parts: App) -> None:
    async with DiscordServer(close_with=4014) as server:
        made = adapter(parts, api_url=server.api_url, shard_count=2, shard_ids=(0,))
        await made.start()
        async with asyncio.timeout(5):
            while made.health.state != "failed":
                await asyncio.sleep(0.01)
        assert "Message Content intent" in made.health.reason
        await asyncio.sleep(0.2)
        assert len(server.identifies) == 1 and made.client.is_closed()
