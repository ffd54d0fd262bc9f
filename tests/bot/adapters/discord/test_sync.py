"""``codethread discord sync``: the slash commands are published on demand, over REST only."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.adapters.discord.adapter import sync_commands
from bot.present import words
from tests.fakes.discord_fakes import APP_ID, GUILD_ID, DiscordServer, FakeDiscord

ROOT = Path(__file__).resolve().parents[4]
GLOBAL = "PUT /applications/{application_id}/commands"
IN_GUILD = "PUT /applications/{application_id}/guilds/{guild_id}/commands"


async def test_sync_publishes_the_commands_everywhere() -> None:
    fake = FakeDiscord()
    assert await sync_commands("test-token", http=fake.http) == 2
    [sync] = fake.calls_to(GLOBAL)
    assert [c["name"] for c in sync.json] == ["code", "snippets"]
    code = sync.json[0]
    assert [o["name"] for o in code["options"]] == ["prompt", "language", "model"]
    assert code["contexts"] == [0]  # servers only: DMs are off by default
    snippets = {c["name"]: c for c in sync.json[1]["options"]}
    assert list(snippets) == ["list", "show", "search", "diff", "run", "files", "delete"]
    run = {o["name"]: o for o in snippets["run"]["options"]}
    assert list(run) == ["id", "version", "stdin", "args"]
    assert [run[name]["required"] for name in run] == [True, False, False, False]
    assert run["stdin"]["max_length"] == 4000 and run["id"]["autocomplete"] is True
    assert run["args"]["description"] == words.COMMAND_HELP["run.args"]
    [files_id] = snippets["files"]["options"]
    assert files_id["name"] == "id" and files_id["autocomplete"] is True
    assert snippets["files"]["description"] == words.COMMAND_HELP["snippets.files"]
    assert [c.key for c in fake.calls] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        GLOBAL,
    ]


async def test_sync_to_one_server_with_dms_allowed() -> None:
    fake = FakeDiscord()
    assert await sync_commands("test-token", guild=GUILD_ID, allow_dms=True, http=fake.http) == 2
    assert fake.calls_to(GLOBAL) == []
    [sync] = fake.calls_to(IN_GUILD)
    assert sync.params["guild_id"] == str(GUILD_ID)
    assert [c["name"] for c in sync.json] == ["code", "snippets"]


async def test_the_cli_syncs_over_rest_without_the_gateway(tmp_path: Path) -> None:
    async with DiscordServer() as server:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "CODETHREAD_DB": str(tmp_path / "ct.db"),
            "DISCORD_BOT_TOKEN": "cli-token",
            "DISCORD_API_URL": server.api_url,
            "NO_PROXY": "127.0.0.1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "discord", "sync", "--guild", str(GUILD_ID),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == f"Published 2 Discord command(s) to server {GUILD_ID}."
        assert [(m, p) for m, p, _ in server.requests] == [
            ("GET", "/users/@me"),
            ("GET", "/oauth2/applications/@me"),
            ("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"),
        ]
        assert {auth for _, _, auth in server.requests} == {"Bot cli-token"}
        assert server.identify is None  # no gateway connection


async def test_the_cli_says_when_no_token_is_set(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "discord", "sync",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "DISCORD_BOT_TOKEN is not set" in err.decode()
