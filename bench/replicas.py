"""``codethread serve`` replicas as real subprocesses, and Slack's deliveries to them.

A :class:`Replica` is one ``python -m bot serve`` in Slack's HTTP mode on a loopback port; it
can be SIGKILLed and started again on the same port, as a crashed pod is. Its log goes to a
file (appended across restarts), never to a pipe: nobody reads a pipe during a benchmark, and a
full one would stop the replica mid-run. :class:`Deliveries` signs Events API bodies as Slack
does and posts them, trying the other replica when one is down or does not answer 200 (what a
load balancer in front of them, or Slack's own retry, does).

The environment is the one the crash tests use (``tests/bot/adapters/slack/test_durable.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.bot.adapters.slack.harness import SECRET, event_body, sign

__all__ = ["ROOT", "Deliveries", "Delivery", "Replica"]

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60.0  # a replica that does not answer /livez by then is a failed run


class Replica:
    """One ``codethread serve`` process on ``port``; :meth:`start` again after :meth:`kill`."""

    def __init__(self, name: str, port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self.env, self.log = name, port, env, log
        self.process: asyncio.subprocess.Process | None = None
        #: what a load balancer's health check would say: started and answering /livez
        self.up = False
        self.starts: list[float] = []  # seconds from spawn to /livez, each start

    async def start(self) -> None:
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), cwd=ROOT, env=self.env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        async with aiohttp.ClientSession() as http:
            while not await self._alive(http):
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited at start; see {self.log}")
                if time.monotonic() - began > START_SECONDS:
                    raise RuntimeError(f"{self.name} did not start; see {self.log}")
                await asyncio.sleep(0.1)
        self.starts.append(time.monotonic() - began)
        self.up = True

    async def _alive(self, http: aiohttp.ClientSession) -> bool:
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/livez") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; whatever it was doing is left as it was."""
        self.up = False
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after 15 s."""
        self.up = False
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 15)
        if self.process.returncode is None:
            await self.kill()


@dataclass(slots=True)
class Delivery:
    """One message's deliveries: when the first began, and how each POST went."""

    sent_at: float = 0.0
    accepted: bool = False  # some replica answered 200
    posts: list[str] = field(default_factory=list)  # "r1:200", "r2:down", "r1:ClientOSError"…


class Deliveries:
    """Signs and posts Events API bodies to the replicas."""

    def __init__(self, http: aiohttp.ClientSession, replicas: list[Replica]) -> None:
        self.http, self.replicas = http, replicas

    async def post(
        self, replica: Replica, event: dict[str, Any], event_id: str, *, retry: int = 0
    ) -> str:
        """One POST; returns how it went, as ``name:status`` or ``name:ErrorType``."""
        if not replica.up:
            return f"{replica.name}:down"
        body = json.dumps(event_body(event, event_id=event_id))
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(body, stamp, SECRET),
        }
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_error"
        url = f"http://127.0.0.1:{replica.port}/slack/events"
        try:
            async with self.http.post(url, data=body, headers=headers) as response:
                await response.read()
                return f"{replica.name}:{response.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            return f"{replica.name}:{type(err).__name__}"

    async def deliver(
        self,
        record: Delivery,
        first: Replica,
        event: dict[str, Any],
        event_id: str,
        *,
        give_up_after: float = 60.0,
    ) -> None:
        """Post to ``first``; until a replica answers 200, to the other one at once and then
        round again after half a second, each later try marked as Slack's retry."""
        order = [first, *(r for r in self.replicas if r is not first)]
        deadline = time.monotonic() + give_up_after
        tries = 0
        while time.monotonic() < deadline:
            outcome = await self.post(order[tries % len(order)], event, event_id, retry=tries)
            record.posts.append(outcome)
            if outcome.endswith(":200"):
                record.accepted = True
                return
            tries += 1
            await asyncio.sleep(0.5 if tries % len(order) == 0 else 0.05)

    async def duplicate(
        self, first: Replica, event: dict[str, Any], event_id: str, rng: random.Random
    ) -> str:
        """The same event to the other replica a moment later (a second endpoint, Slack's
        retry of a late acknowledgement): it must add nothing."""
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        other = next(r for r in self.replicas if r is not first)
        return await self.post(other, event, event_id)
