"""The terminal chat as a person uses it: a real terminal (tmux), keys sent, the screen read.

Each test starts ``codethread chat`` in a private tmux server (its own socket, so test runs
sharing a machine never meet) against the loopback OpenAI-compatible server, sends keys with
``send-keys`` (a bracketed paste with ``paste-buffer -p``), and reads the screen with
``capture-pane``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@dataclass
class Terminal:
    socket: str
    db: Path
    home: Path

    async def tmux(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        return out.decode()

    async def keys(self, *keys: str) -> None:
        await self.tmux("send-keys", "-t", "chat", *keys)

    async def paste(self, text: str, *, bracketed: bool = True) -> None:
        await self.tmux("set-buffer", "-b", "p", text)
        await self.tmux("paste-buffer", *(["-p"] if bracketed else []), "-b", "p", "-t", "chat")

    async def screen(self) -> str:
        return await self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "chat")

    async def wait_for(self, text: str, *, count: int = 1, seconds: float = 20) -> str:
        """The screen once ``text`` is on it ``count`` times."""
        screen = ""
        async with asyncio.timeout(seconds):
            while (screen := await self.screen()).count(text) < count:
                await asyncio.sleep(0.1)
        return screen

    async def ready(self, text: str, *, seconds: float = 20) -> str:
        """The screen once ``text`` is on it and the prompt is back (keys typed before that
        would reach a terminal that is not in prompt_toolkit's raw mode yet)."""
        screen = ""
        async with asyncio.timeout(seconds):
            while True:
                screen = await self.screen()
                lines = [line for line in screen.splitlines() if line.strip()]
                if text in screen and lines and lines[-1].strip() == ">":
                    return screen
                await asyncio.sleep(0.1)

    async def alive(self) -> bool:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, "has-session", "-t", "chat",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return await proc.wait() == 0

    def requests(self) -> list[str]:
        with sqlite3.connect(self.db) as conn:
            return [row[0] for row in conn.execute("SELECT request FROM versions ORDER BY id")]


@pytest.fixture
async def terminal(tmp_path: Path, openai_server: OpenAIServer) -> AsyncIterator[Terminal]:
    def handler(body: dict[str, Any]) -> ScriptedReply:
        reply = code_reply(body)
        if "SLOW" in body["messages"][-1]["content"]:
            reply.delay_before = 30
        return reply

    openai_server.handler = handler
    home = tmp_path / "home"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "TERM": "xterm-256color",
        "CODETHREAD_DB": str(tmp_path / "ct.db"),
        "CODETHREAD_MODEL": "openai:test-model",
        "OPENAI_BASE_URL": openai_server.base_url,
        "NO_PROXY": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
    }
    script = tmp_path / "chat.sh"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    script.write_text(
        f"#!/bin/sh\ncd {shlex.quote(str(ROOT))}\n"
        f"exec env -i {exports} {shlex.quote(sys.executable)} -m bot chat\n"
    )
    script.chmod(0o755)
    term = Terminal(socket=f"ct-{uuid.uuid4().hex[:12]}", db=tmp_path / "ct.db", home=home)
    await term.tmux("new-session", "-d", "-x", "160", "-y", "50", "-s", "chat", str(script))
    try:
        await term.ready("Esc-Enter for a new line")
        yield term
    finally:
        await term.tmux("kill-server")


async def test_a_line_is_edited_and_history_brings_it_back(terminal: Terminal) -> None:
    await terminal.keys("say hllo", "Left", "Left", "Left", "e", "Enter")
    await terminal.ready("Version 1 of #1")
    await terminal.keys("Up", "Enter")  # the last line again, from the history
    screen = await terminal.ready("Version 2 of #1")
    assert "^[[" not in screen  # arrow keys edit; they never reach the model
    assert terminal.requests() == ["say hello", "say hello"]
    history = (terminal.home / "state" / "codethread" / "history").read_text()
    assert "say hello" in history


async def test_a_pasted_function_is_one_message_and_long_lines_arrive_whole(
    terminal: Terminal,
) -> None:
    await terminal.paste("write this:\ndef add(a, b):\n    return a + b")
    await terminal.keys("Enter")
    await terminal.ready("Version 1 of #1")
    long = "x" * 6000  # longer than a terminal's 4,095-character line
    await terminal.paste(long, bracketed=False)
    await terminal.keys("Enter")
    await terminal.ready("Version 2 of #1")
    requests = terminal.requests()
    assert requests[0] == "write this:\ndef add(a, b):\n    return a + b"  # one version
    assert requests[1] == long


async def test_esc_enter_starts_a_new_line(terminal: Terminal) -> None:
    await terminal.keys("first line", "Escape", "Enter", "second line", "Enter")
    await terminal.ready("Version 1 of #1")
    assert terminal.requests() == ["first line\nsecond line"]


async def test_ctrl_c_cancels_the_answer_and_a_second_at_an_empty_prompt_leaves(
    terminal: Terminal,
) -> None:
    await terminal.keys("SLOW please", "Enter")
    await terminal.wait_for("Writing version 1")
    await terminal.keys("C-c")
    await terminal.ready("interrupted")
    await terminal.keys("now quickly", "Enter")  # the chat goes on
    await terminal.ready("Version 1 of #1")
    assert terminal.requests() == ["now quickly"]  # in the session the first ask opened
    await terminal.keys("C-c")
    await terminal.wait_for("Press Ctrl-C again")
    assert await terminal.alive()
    await terminal.keys("C-c")
    async with asyncio.timeout(10):
        while await terminal.alive():
            await asyncio.sleep(0.1)


async def test_delete_asks_first(terminal: Terminal) -> None:
    await terminal.keys("say hi", "Enter")
    await terminal.ready("Version 1 of #1")
    await terminal.keys("/delete", "Enter")
    await terminal.wait_for("[y/N]")
    await terminal.keys("n", "Enter")
    await terminal.ready("Kept it.")
    await terminal.keys("/delete", "Enter")
    await terminal.wait_for("[y/N]", count=2)
    await terminal.keys("y", "Enter")
    await terminal.ready("Deleted snippet #1")
    assert terminal.requests() == []
