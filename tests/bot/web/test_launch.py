"""``codethread web`` in a subprocess: it serves the page on 127.0.0.1, hands a one-time link
to the browser ($BROWSER, here a script that writes it down) and prints it; the link signs in
the terminal user, whose sessions from ``codethread chat`` are listed; Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from bot.present import web as say

from .conftest import login_form

ROOT = Path(__file__).resolve().parents[3]


def environment(tmp_path: Path) -> dict[str, str]:
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {tmp_path / "opened.txt"}\n')
    browser.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "USER": "alice",
        "LOGNAME": "alice",
        "CODETHREAD_DB": str(tmp_path / "ct.db"),
        "CODETHREAD_MODEL": "fake:echo",
        "BROWSER": str(browser),
        "NO_PROXY": "127.0.0.1",
    }


async def codethread(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_web_opens_a_link_that_signs_the_terminal_user_in(tmp_path: Path) -> None:
    env = environment(tmp_path)
    code, out = await codethread("chat", env=env, stdin=b"count the stars\n")
    assert code == 0, out
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "web", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        printed = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        opened = tmp_path / "opened.txt"
        async with asyncio.timeout(30):
            while not opened.exists() or not opened.read_text():
                await asyncio.sleep(0.05)
        url = opened.read_text()
        assert url.startswith("http://127.0.0.1:") and "/login?t=" in url
        assert url in printed
        base = url.split("/login")[0]
        jar = aiohttp.CookieJar(unsafe=True)  # a cookie of an IP address host
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(url) as opened_link:  # its page posts it on
                assert opened_link.status == 200
                fields = login_form(await opened_link.text())
            async with browser.post(base + "/login", data=fields) as home:
                page = await home.text()
        assert say.signed_in("alice", "console") in page and "count the stars" in page
        async with (
            aiohttp.ClientSession() as elsewhere,
            elsewhere.post(base + "/login", data=fields) as again,
        ):
            assert again.status == 403  # once only
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_web_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = await codethread("web", "--port", str(port), env=environment(tmp_path))
    assert code == 1 and f"Cannot listen on 127.0.0.1:{port}: the port is in use" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
