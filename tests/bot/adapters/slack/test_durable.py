"""Durable turns, the hard way: ``codethread serve`` killed (SIGKILL) in the middle of an
answer, started again, and the message answered exactly once, in the same thread.

The bot runs as a real subprocess in Slack's HTTP mode against the loopback Slack and OpenAI
fakes; events are signed as Slack signs them. The first answer streams slowly so that the kill
lands while it is being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from storage import SessionKey, open_store
from tests.fakes.openai_server import OpenAIServer, ScriptedReply, code_reply
from tests.fakes.slack_api import TEAM, FakeSlack

from .harness import SECRET, TOKEN, event_body, sign

ROOT = Path(__file__).resolve().parents[4]
PARENT = "1800000000.000100"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(check: Callable[[], Any], seconds: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:

            async def alive() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/livez") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            deadline = time.monotonic() + 30
            while not await alive():
                assert proc.returncode is None, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "serve did not start"
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def environment(
    tmp_path: Path, db: str, openai_server: OpenAIServer, slack: FakeSlack
) -> dict[str, str]:
    """What ``serve`` runs with: Slack in HTTP mode at the fake, the fake model, ``db``."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "CODETHREAD_DB": db,
        "CODETHREAD_CONFIG": str(tmp_path / "config.toml"),
        "CODETHREAD_MODEL": "openai:test-model",
        "OPENAI_BASE_URL": openai_server.base_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "NO_PROXY": "127.0.0.1",
    }


async def post_event(port: int, event: dict[str, Any], event_id: str) -> int:
    body = json.dumps(event_body(event, event_id=event_id))
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(body, stamp, SECRET),
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as response,
    ):
        return response.status


async def test_a_killed_serve_answers_the_message_once_after_its_restart(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    requests: list[str] = []

    def handler(body: dict[str, Any]) -> ScriptedReply:
        requests.append(body["messages"][-1]["content"])
        if len(requests) == 1:  # the first attempt: slow enough to be killed mid-answer
            return ScriptedReply(text="```python\n" + "x = 1\n" * 200 + "```", delay_between=0.2)
        return code_reply(body)

    openai_server.handler = handler
    db = tmp_path / "ct.db"
    store = await open_store(db)
    key = SessionKey(platform="slack", workspace=TEAM, channel="C1", thread=PARENT)
    session = await store.create_session(
        key=key, owner="U1", language="python", model="openai:test-model", title="x"
    )
    await store.close()
    (tmp_path / "config.toml").write_text("job_stale_after = 1\nedit_interval = 0.05\n")
    port = _free_port()
    async with FakeSlack() as slack:
        env = environment(tmp_path, str(db), openai_server, slack)
        message = {
            "type": "message", "channel": "C1", "user": "U1", "text": "make it count",
            "ts": "1800000000.000200", "thread_ts": PARENT, "channel_type": "channel",
        }  # fmt: skip
        async with serve(env, port) as first:
            assert await post_event(port, message, "EvOne") == 200
            await _until(lambda: slack.thread("C1", PARENT), what="the answer's message")
            await _until(lambda: len(requests) == 1, what="the first request")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        [writing] = slack.thread("C1", PARENT)

        async with serve(env, port):
            # Slack retries the event after the restart: nothing new comes of it
            assert await post_event(port, message, "EvOne") == 200

            def answered() -> bool:
                texts = [m.text for m in slack.thread("C1", PARENT)]
                return len(texts) >= 2 and "Version 1 of snippet #" in texts[-1]

            try:
                await _until(answered, what="the answer after the restart")
            except AssertionError:
                print("THREAD", [(m.ts, m.text[:200]) for m in slack.thread("C1", PARENT)])
                print("REQUESTS", len(requests))
                print("CALLS", [c.method for c in slack.calls][-20:])
                raise
            await asyncio.sleep(0.5)  # time for anything that should not happen

        thread = slack.thread("C1", PARENT)
        assert thread[0].ts == writing.ts
        assert "Interrupted by a restart" in thread[0].text  # said in the same message
        assert len(thread) == 2 and len(requests) == 2
    store = await open_store(db)
    try:
        versions = await store.list_versions(session.id)
        assert [v.request for v in versions] == ["make it count"]  # exactly once
    finally:
        await store.close()


async def test_two_replicas_on_one_postgresql_answer_each_message_once(
    tmp_path: Path, openai_server: OpenAIServer, postgres_db: str
) -> None:
    requests: list[str] = []

    def handler(body: dict[str, Any]) -> ScriptedReply:
        requests.append(body["messages"][-1]["content"])
        return code_reply(body)

    openai_server.handler = handler
    store = await open_store(postgres_db)
    threads = [f"1800000000.00{n}100" for n in range(3)]
    for thread in threads:
        await store.create_session(
            key=SessionKey(platform="slack", workspace=TEAM, channel="C1", thread=thread),
            owner="U1", language="python", model="openai:test-model", title="x",
        )  # fmt: skip
    await store.close()
    (tmp_path / "config.toml").write_text("edit_interval = 0.05\n")
    ports = [_free_port(), _free_port()]
    async with FakeSlack() as slack:
        env = environment(tmp_path, postgres_db, openai_server, slack)
        async with serve(env, ports[0]), serve(env, ports[1]):
            for n, thread in enumerate(threads):
                message = {
                    "type": "message", "channel": "C1", "user": "U1", "text": f"change {n}",
                    "ts": f"1800000001.00{n}000", "thread_ts": thread, "channel_type": "channel",
                }  # fmt: skip
                # delivered to one replica, then (a retry, a second endpoint) to both again
                assert await post_event(ports[n % 2], message, f"Ev{n}") == 200
                assert await asyncio.gather(
                    *(post_event(port, message, f"Ev{n}") for port in ports)
                ) == [200, 200]

            def answered() -> bool:
                return all(
                    any("Version 1 of snippet #" in m.text for m in slack.thread("C1", t))
                    for t in threads
                )

            await _until(answered, what="every thread's answer")
            await asyncio.sleep(0.5)  # time for a second answer that must not come
        assert sorted(requests) == [f"change {n}" for n in range(3)]  # one request each
        for thread in threads:
            assert len(slack.thread("C1", thread)) == 1
    store = await open_store(postgres_db)
    try:
        for n in range(3):
            versions = await store.list_versions(n + 1)
            assert [v.request for v in versions] == [f"change {n}"]
    finally:
        await store.close()
