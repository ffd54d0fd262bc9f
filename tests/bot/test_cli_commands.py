"""The CLI's own commands in a subprocess: snippets show/diff/export/delete/list, doctor, config
show, the database's place and modes, serve on a busy port, the first-run line.

Like tests/bot/test_cli.py, against the loopback OpenAI-compatible server; Slack's
``auth.test`` goes to :class:`FakeSlack`, Discord's ``users/@me`` to a small aiohttp server.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import socket
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from bot.adapters.console import console_caller
from bot.cli import _caller, _first_run_notice
from bot.config import load_config
from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(tmp_path: Path, home: Path, openai_server: OpenAIServer) -> Cli:
    """``await cli(*args, stdin=..., env={...}, cwd=...)``; an env value of None unsets it."""

    def handler(body: dict[str, object]) -> ScriptedReply:
        last = body["messages"][-1]["content"]  # type: ignore[index]
        if "PROSE" in str(last):
            return ScriptedReply(text="Do you want it recursive or iterative?")
        return code_reply(body)

    openai_server.handler = handler

    async def run(
        *args: str,
        stdin: str | int = "",
        env: dict[str, str | None] | None = None,
        cwd: Path = ROOT,
    ) -> Result:
        base: dict[str, str | None] = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "USER": "alice",
            "LOGNAME": "alice",
            "CODETHREAD_DB": str(tmp_path / "ct.db"),
            "CODETHREAD_MODEL": "openai:test-model",
            "OPENAI_BASE_URL": openai_server.base_url,
            "NO_PROXY": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
        }
        base.update(env or {})
        full = {k: v for k, v in base.items() if v is not None}
        piped = isinstance(stdin, str)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args,
            stdin=asyncio.subprocess.PIPE if piped else stdin, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=full,
        )  # fmt: skip
        data = stdin.encode() if isinstance(stdin, str) else None
        out, err = await asyncio.wait_for(proc.communicate(data), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


def one_line_error(result: Result, text: str) -> None:
    assert result.code != 0, result
    assert text in result.err, result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


async def two_versions(cli: Cli, first: str = "write fizzbuzz", then: str = "count to 30") -> None:
    chat = await cli("chat", "--language", "python", stdin=f"{first}\n{then}\n")
    assert chat.code == 0, chat.err


# -- snippets ----------------------------------------------------------------------------------


async def test_show_raw_is_only_the_code_and_runs(cli: Cli, tmp_path: Path) -> None:
    await two_versions(cli)
    raw = await cli("snippets", "show", "1", "--raw", "--version", "1")
    assert raw.code == 0, raw.err
    assert raw.out.startswith("# fake-model version 1\n") and "```" not in raw.out
    script = tmp_path / "x.py"
    script.write_text(raw.out)
    ran = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(ran.communicate(), 30)
    assert ran.returncode == 0 and out == b"write fizzbuzz\n"


async def test_show_json_has_the_versions_fields(cli: Cli) -> None:
    await two_versions(cli)
    shown = await cli("snippets", "show", "1", "--json")
    assert shown.code == 0, shown.err
    version = json.loads(shown.out)
    assert version["number"] == 2 and version["session_id"] == 1
    assert version["request"] == "count to 30" and "# built on version 1" in version["code"]
    assert version["language"] == "python" and version["title"] == "write fizzbuzz"
    assert {"note", "model", "latency_ms", "created_at"} <= set(version)
    both = await cli("snippets", "show", "1", "--raw", "--json")
    assert both.code == 2 and "exclude each other" in both.err


async def test_diff_of_the_last_two_or_the_named_versions(cli: Cli) -> None:
    await two_versions(cli)
    await cli("chat", "--session", "1", stdin="add a docstring\n")
    diff = await cli("snippets", "diff", "1")
    assert diff.code == 0, diff.err
    lines = diff.out.splitlines()
    assert lines[:2] == ["--- #1 v2", "+++ #1 v3"]
    assert "-# fake-model version 2" in lines and "+# fake-model version 3" in lines
    named = await cli("snippets", "diff", "1", "1", "3")
    assert named.out.splitlines()[:2] == ["--- #1 v1", "+++ #1 v3"]
    alone = await cli("snippets", "diff", "1", "1")
    assert alone.out.splitlines()[:2] == ["--- #1 v1", "+++ #1 v3"]
    one_line_error(await cli("snippets", "diff", "1", "1", "9"), "has no version 9")


async def test_diff_of_a_single_version_says_there_is_nothing_to_compare(cli: Cli) -> None:
    await cli("chat", stdin="write fizzbuzz\n")
    one_line_error(await cli("snippets", "diff", "1"), "nothing to compare")


async def test_export_writes_snippet_ext_and_refuses_to_replace_it(
    cli: Cli, tmp_path: Path
) -> None:
    await cli("chat", stdin="print hello\n")
    work = tmp_path / "work"
    work.mkdir()
    exported = await cli("snippets", "export", "1", cwd=work)
    assert exported.code == 0, exported.err
    assert "Wrote version 1 of #1 to snippet.py" in exported.err
    assert (work / "snippet.py").read_text().startswith("# fake-model version 1\n")
    one_line_error(await cli("snippets", "export", "1", cwd=work), "exists already")
    named = await cli("snippets", "export", "1", "-o", str(work / "snippet.py"), cwd=work)
    assert named.code == 0, named.err  # a named file is replaced, as a shell redirect would
    to_stdout = await cli("snippets", "export", "1", "-o", "-")
    assert to_stdout.out == (work / "snippet.py").read_text()


async def test_delete_asks_and_piped_stdin_needs_yes(cli: Cli) -> None:
    await cli("chat", stdin="write fizzbuzz\n")
    one_line_error(await cli("snippets", "delete", "1"), "pass --yes")
    assert len(json.loads((await cli("snippets", "list", "--json")).out)) == 1

    primary, secondary = pty.openpty()  # stdin a terminal: the question is asked there
    try:
        os.write(primary, b"n\n")
        kept = await cli("snippets", "delete", "1", stdin=secondary)
        assert kept.code == 1 and "Delete session 1 (write fizzbuzz) and its 1 version?" in kept.out
        assert len(json.loads((await cli("snippets", "list", "--json")).out)) == 1
        os.write(primary, b"y\n")
        deleted = await cli("snippets", "delete", "1", stdin=secondary)
        assert deleted.code == 0 and "Deleted session 1 (write fizzbuzz)." in deleted.out
    finally:
        os.close(primary)
        os.close(secondary)
    await cli("chat", stdin="write fizzbuzz\n")
    yes = await cli("snippets", "delete", "2", "--yes")
    assert yes.code == 0 and "Deleted session 2" in yes.out
    assert json.loads((await cli("snippets", "list", "--json")).out) == []


async def test_list_search_matches_titles_and_later_requests(cli: Cli) -> None:
    await two_versions(cli, "write fizzbuzz", "use pandas")
    await two_versions(cli, "parse a csv", "handle empty files")
    await cli("chat", stdin="sum 100%_of it\n")

    async def ids(text: str) -> list[int]:
        found = await cli("snippets", "list", "--json", "--search", text)
        assert found.code == 0, found.err
        return [row["id"] for row in json.loads(found.out)]

    assert await ids("FIZZ") == [1]
    assert await ids("empty files") == [2]
    assert await ids("100%_") == [3]
    assert await ids("%") == [3]  # LIKE's wildcards match themselves
    assert await ids("nothing like it") == []
    plain = await cli("snippets", "list", "--search", "nothing like it")
    assert plain.code == 0 and "No snippets match 'nothing like it'." in plain.out


async def test_empty_sessions_are_hidden_then_removed_after_a_day(cli: Cli, tmp_path: Path) -> None:
    await cli("chat", stdin="PROSE please\n")  # a non-code answer: a session with no version
    await cli("chat", stdin="write fizzbuzz\n")
    rows = json.loads((await cli("snippets", "list", "--json")).out)
    assert [row["id"] for row in rows] == [2]
    db = tmp_path / "ct.db"

    def session_ids() -> list[int]:
        with sqlite3.connect(db) as conn:
            return [row[0] for row in conn.execute("SELECT id FROM sessions ORDER BY id")]

    assert session_ids() == [1, 2]  # hidden, not yet gone
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sessions SET updated_at = ?", (time.time() - 2 * 86400,))
    await cli("snippets", "list")
    assert session_ids() == [2]  # the old empty one is pruned; the old one with code is kept


def test_caller_is_the_chats_caller() -> None:
    assert _caller() == console_caller()


# -- the database's place ----------------------------------------------------------------------


async def test_default_data_dir_is_private(cli: Cli, home: Path) -> None:
    listing = await cli("snippets", "list", env={"CODETHREAD_DB": None})
    assert listing.code == 0, listing.err
    db = home / ".local" / "share" / "codethread" / "codethread.db"
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_a_missing_directory_for_the_db_is_refused(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "x.db"
    one_line_error(await cli("snippets", "list", env={"CODETHREAD_DB": str(db)}), "does not exist")
    assert not (tmp_path / "no").exists()


async def test_an_unusable_home_is_one_line(cli: Cli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env: dict[str, str | None] = {"HOME": str(not_a_dir), "CODETHREAD_DB": None}
    assert (await cli("--help", env=env)).code == 0
    one_line_error(await cli("snippets", "list", env=env), "Cannot open the database")


async def test_serve_on_a_busy_port_is_one_line(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = await cli("serve", "--host", "127.0.0.1", "--port", str(port))
    assert served.code == 1, served.err
    assert f"Cannot listen on 127.0.0.1:{port}: the port is in use" in served.err
    assert "Traceback" not in served.err


# -- doctor and config -------------------------------------------------------------------------


@pytest.fixture
async def discord_api() -> AsyncIterator[str]:
    """``GET /api/v10/users/@me``: the bot for ``Bot good-token``, 401 for any other."""

    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bot good-token":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return web.json_response({"id": "1234", "username": "codethread", "bot": True})

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", me)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/v10"
    finally:
        await runner.cleanup()


async def test_doctor_checks_each_part_in_one_line(cli: Cli, discord_api: str) -> None:
    async with FakeSlack() as slack:
        env: dict[str, str | None] = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_APP_TOKEN": "xapp-test",
            "SLACK_API_URL": slack.base_url,
            "DISCORD_BOT_TOKEN": "good-token",
            "DISCORD_API_URL": discord_api,
        }
        good = await cli("doctor", env=env)
        slack.fail("auth.test", "invalid_auth")
        bad = await cli("doctor", env={**env, "DISCORD_BOT_TOKEN": "stale"})
    lines = good.out.splitlines()
    assert all(line[:2] in ("✓ ", "✗ ") for line in lines), good.out
    found = {line.split(": ")[0][2:]: line for line in lines}
    assert found["model openai:test-model"].startswith("✓")
    assert found["database"].startswith("✓") and "0600" in found["database"]
    assert found["Slack"] == "✓ Slack: the token works (@codethread in Fake Team, Socket Mode)"
    assert found["Discord"] == "✓ Discord: the token works (codethread, id 1234)"
    assert found["config file"].startswith("✓ config file: none")
    assert "sandbox" in found and "log" in found and "Hugging Face" in found
    assert good.code == (0 if all(line.startswith("✓") for line in lines) else 1)
    assert "xoxb-test" not in good.out + good.err and "good-token" not in good.out + good.err

    assert bad.code == 1
    bad_lines = {line.split(": ")[0][2:]: line for line in bad.out.splitlines()}
    assert bad_lines["Slack"].startswith("✗ Slack: auth.test answered invalid_auth: copy")
    assert bad_lines["Discord"].startswith("✗ Discord: the token was refused (401)")


async def test_doctor_says_an_offline_local_default_is_not_there(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    env = {"OPENAI_BASE_URL": None, "CODETHREAD_MODEL": None, "HF_HOME": str(tmp_path / "hf")}
    local = await cli("doctor", env=env)
    assert local.code == 1
    hf = next(line for line in local.out.splitlines() if line.startswith(("✓ Hug", "✗ Hug")))
    assert hf.startswith("✗ Hugging Face:") and "HF_HUB_OFFLINE" in hf, local.out


async def test_config_show_masks_tokens_and_reads_the_default_file(cli: Cli, home: Path) -> None:
    config = home / ".config" / "codethread" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('language = "rust"\n[models.mine]\nref = "openai:my-model"\n')
    shown = await cli(
        "config", "show",
        env={"SLACK_BOT_TOKEN": "xoxb-hush-1234", "OPENAI_API_KEY": "sk-hush-5678",
             "OPENAI_BASE_URL": "https://me:hush@llm.example/v1?api-key=hush",
             "CODETHREAD_DB": "postgresql://bot:hush@db.internal/codethread",
             "DISCORD_SHARD_IDS": "0,1", "CODETHREAD_MODEL": None},
    )  # fmt: skip
    assert shown.code == 0, shown.err
    assert "hush" not in shown.out
    assert 'db_path = "postgresql://***@db.internal/codethread"' in shown.out
    assert "discord_shard_ids = [0, 1]" in shown.out
    assert '# OPENAI_BASE_URL = "https://***@llm.example/v1?api-key=***"' in shown.out
    lines = shown.out.splitlines()
    assert lines[0] == f"# config file: {config}"
    assert 'language = "rust"' in lines and 'models.mine.ref = "openai:my-model"' in lines
    assert 'slack_bot_token = "********"  # set, hidden' in lines
    assert "# discord_bot_token is not set" in lines
    assert "# OPENAI_API_KEY is set, hidden" in lines
    elsewhere = await cli("config", "show", env={"CODETHREAD_CONFIG": str(home / "none.toml")})
    one_line_error(elsewhere, "which does not exist")


# -- the first run -----------------------------------------------------------------------------


def test_first_run_notice_names_the_local_default() -> None:
    env = {"HF_HUB_OFFLINE": "1"}
    assert _first_run_notice(load_config(env), env) == (
        "no OpenAI key or server set: using the local model qwen-coder, "
        "a 3 GB download on first use"
    )
    for chosen in ({"OPENAI_API_KEY": "sk-x"}, {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"},
                   {"CODETHREAD_MODEL": "qwen-coder"}):  # fmt: skip
        assert _first_run_notice(load_config(chosen), chosen) is None


async def test_offline_first_message_says_what_to_set(cli: Cli) -> None:
    pytest.importorskip("transformers")
    chat = await cli(
        "chat", stdin="write fizzbuzz\n", env={"OPENAI_BASE_URL": None, "CODETHREAD_MODEL": None}
    )
    assert chat.code == 1
    assert "Traceback" not in chat.out + chat.err
    assert "HF_HUB_OFFLINE is set" in chat.out and "set OPENAI_API_KEY" in chat.out
    notice = "no OpenAI key or server set: using the local model qwen-coder, a 3 GB download"
    assert notice in chat.err


async def test_downloads_keep_their_progress_bars_and_logs_go_to_a_file(home: Path) -> None:
    probe = (
        "import os; from bot.cli import _log_to_file; _log_to_file(); env = os.environ; "
        "print(env.get('HF_HUB_DISABLE_PROGRESS_BARS'), env['TRANSFORMERS_VERBOSITY'])"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert out.decode().split() == ["None", "error"]
    assert (home / ".local" / "state" / "codethread" / "log" / "codethread.log").exists()
