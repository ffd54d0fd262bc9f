"""The ``codethread`` CLI in a subprocess, against the loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(tmp_path: Path, openai_server: OpenAIServer):  # type: ignore[no-untyped-def]
    def handler(body: dict[str, Any]) -> ScriptedReply:
        last = body["messages"][-1]["content"]
        if "FAIL" in last:
            return ScriptedReply(status=500, error_message="boom", headers={"retry-after-ms": "1"})
        if "PROSE" in last:
            return ScriptedReply(text="Do you want it recursive or iterative?")
        return code_reply(body)

    openai_server.handler = handler

    async def run(*args: str, stdin: str = "", user: str = "alice", cwd: Path = ROOT) -> Result:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "HOME": str(tmp_path),
            "USER": user,
            "LOGNAME": user,
            "CODETHREAD_DB": str(tmp_path / "ct.db"),
            "CODETHREAD_MODEL": "openai:test-model",
            "OPENAI_BASE_URL": openai_server.base_url,
            "NO_PROXY": "127.0.0.1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


def fenced_blocks(text: str) -> list[str]:
    return [part for i, part in enumerate(text.split("```")) if i % 2 == 1]


async def test_piped_chat_makes_two_versions_then_list_show_resume_delete(run_cli) -> None:  # type: ignore[no-untyped-def]
    chat = await run_cli(
        "chat", "--language", "python", stdin="write fizzbuzz\nmake it count to 30\n"
    )
    assert chat.code == 0, chat.err
    blocks = fenced_blocks(chat.out)
    assert len(blocks) == 2
    assert blocks[0].startswith("python\n# fake-model version 1")
    assert "# built on version 1" in blocks[1] and "make it count to 30" in blocks[1]
    assert "Traceback" not in chat.err

    listing = await run_cli("snippets", "list", "--json")
    assert listing.code == 0, listing.err
    (session,) = json.loads(listing.out)
    assert session["versions"] == 2 and session["title"] == "write fizzbuzz"
    sid = str(session["id"])

    shown = await run_cli("snippets", "show", sid, "--version", "1")
    assert shown.code == 0 and "# fake-model version 1" in shown.out and "built on" not in shown.out

    resumed = await run_cli("chat", "--session", sid, stdin="add a docstring\n")
    assert resumed.code == 0, resumed.err
    assert "# built on version 2" in resumed.out and "version 3" in resumed.out

    other = await run_cli("snippets", "delete", sid, user="mallory")
    assert other.code != 0 and "belongs to someone else" in other.err

    deleted = await run_cli("snippets", "delete", sid, "--yes")
    assert deleted.code == 0 and f"Deleted session {sid}" in deleted.out
    assert json.loads((await run_cli("snippets", "list", "--json")).out) == []


async def test_errors_are_messages_and_the_session_stays_usable(run_cli) -> None:  # type: ignore[no-untyped-def]
    stdin = "write a parser\nFAIL please\nPROSE please\n" + "x" * 200_000 + "\nadd tests\n"
    chat = await run_cli("chat", stdin=stdin)
    assert chat.code == 1, chat.err  # piped: a turn failed, so the exit status says so
    assert "Traceback" not in chat.out + chat.err
    assert "500" in chat.out and "/retry" in chat.out
    assert "No code in this answer" in chat.out and "recursive or iterative" in chat.out
    assert "200,000 characters; the limit is 8,000" in chat.out
    blocks = fenced_blocks(chat.out)
    assert len(blocks) == 2 and "# built on version 1" in blocks[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("chat", "--language", "klingon"), "Unknown language 'klingon'. Choose one of: python"),
        (("chat", "--model", "nope"), "Unknown model 'nope'. Choose one of: gpt-6.1-terra"),
        (("chat", "--session", "999"), "No snippet session 999"),
        (("snippets", "show", "999"), "No snippet session 999"),
        (("snippets", "show", "abc"), "'abc' is not a valid integer"),
    ],
)
async def test_bad_input_is_one_line_and_non_zero(
    run_cli, args: tuple[str, ...], message: str
) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli(*args, stdin="hello\n")
    assert result.code != 0
    assert message in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) <= 4  # click adds two usage lines to usage errors


async def test_models_lists_catalog_with_readiness(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("models", "--json")
    assert result.code == 0, result.err
    models = {m["name"]: m for m in json.loads(result.out)}
    assert models["openai:test-model"]["default"] is True
    assert models["openai:test-model"]["status"] == "ready"
    # weights load only in a running service; without the local extra the entry says why not
    status = models["qwen-coder"]["status"]
    assert status == "not loaded" or status.startswith("failed: The local engine is not installed")

    offered = await run_cli("models", "--server", "--json")
    assert offered.code == 0 and json.loads(offered.out) == ["test-model"]


async def test_models_says_when_a_server_is_down(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CODETHREAD_DB": str(tmp_path / "ct.db"),
        "CODETHREAD_MODEL": "openai:test-model",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens there
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "models", "--json", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    models = {m["name"]: m for m in json.loads(out)}
    assert models["openai:test-model"]["status"].startswith("failed: unreachable")


async def test_run_in_the_terminal(run_cli) -> None:  # type: ignore[no-untyped-def]
    from sandbox import Sandbox

    if reason := await Sandbox().check():
        pytest.skip(reason)
    chat = await run_cli("chat", stdin="say hello\n/run\n/run 7\n/fix\n")
    assert chat.code == 1, chat.err  # /run 7 and /fix were refused
    assert "Run of version 1 of #1 passed · exit 0" in chat.out
    assert "**stdout**\n```text\nsay hello\n```" in chat.out
    assert "has no version 7" in chat.out
    assert "The latest run of this version passed; there is nothing to fix." in chat.out


async def test_diff_and_revert_in_the_terminal(run_cli) -> None:  # type: ignore[no-untyped-def]
    chat = await run_cli("chat", stdin="write fizzbuzz\nmake it count to 30\n/diff\n/revert 1\n")
    assert chat.code == 0, chat.out + chat.err
    assert "Version 1 → 2 of #1" in chat.out and "+# built on version 1" in chat.out
    assert "── Version 3 of #1" in chat.out
    listed = json.loads((await run_cli("snippets", "list", "--json")).out)
    assert listed[0]["versions"] == 3
    shown = await run_cli("snippets", "show", str(listed[0]["id"]), "--raw")
    assert shown.out.startswith("# fake-model version 1")  # version 3 is version 1's code


async def test_run_with_input_and_arguments_in_the_terminal(
    run_cli, tmp_path: Path, openai_server: OpenAIServer
) -> None:  # type: ignore[no-untyped-def]
    from sandbox import Sandbox

    if reason := await Sandbox().check():
        pytest.skip(reason)
    code = "import sys\nrows = sys.stdin.read().split()\nprint(len(rows), sys.argv[1:])"
    openai_server.handler = lambda body: ScriptedReply(text=f"```python\n{code}\n```")
    data = tmp_path / "rows.txt"
    data.write_text("a\nb\nc\n")
    chat = await run_cli("chat", stdin=f"count rows\n/run --stdin {data} -- --top 'two words'\n")
    assert chat.code == 0, chat.out + chat.err
    assert "3 ['--top', 'two words']" in chat.out
    assert "With arguments `--top 'two words'` and 6 bytes (3 lines) on stdin" in chat.out


async def test_attach_a_file_run_with_it_and_get_the_files_it_made(
    run_cli, tmp_path: Path, openai_server: OpenAIServer
) -> None:  # type: ignore[no-untyped-def]
    from sandbox import Sandbox

    if reason := await Sandbox().check():
        pytest.skip(reason)
    code = (
        "import csv\n"
        "rows = list(csv.reader(open('data.csv')))[1:]\n"
        "print(sum(int(r[1]) for r in rows))\n"
        "open('plot.png', 'wb').write(bytes(range(200)))"
    )
    seen: list[str] = []

    def handler(body: dict[str, Any]) -> ScriptedReply:
        seen.append(body["messages"][-1]["content"])
        return ScriptedReply(text=f"```python\n{code}\n```")

    openai_server.handler = handler
    (tmp_path / "data.csv").write_text("fruit,qty\napple,3\npear,4\n")
    work = tmp_path / "work"
    work.mkdir()
    script = f"sum the quantities\n/attach {tmp_path / 'data.csv'}\n/files\nuse ints\n/run\n"
    chat = await run_cli("chat", stdin=script, cwd=work)
    assert chat.code == 0, chat.out + chat.err
    assert "Attached `data.csv` (25 B) to #1" in chat.out
    assert "`data.csv` · 25 B" in chat.out
    assert "fruit,qty" in seen[-1]  # the second turn was told of the file
    assert "**stdout**\n```text\n7\n```" in chat.out
    saved = work / "codethread-out" / "1-2" / "plot.png"
    assert f"Saved {saved.relative_to(work)}" in chat.out
    assert saved.read_bytes() == bytes(range(200))
