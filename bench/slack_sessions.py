"""Slack adapter under load: N sessions started at once through the HTTP endpoint.

N users each send a signed ``/code`` to ``POST /slack/events`` of the real web app (the Slack
adapter in HTTP mode, edits paced at 1 s) at the same instant; the adapter talks to the loopback
fake Slack, the engine is a FakeEngine that streams each answer over ``--latency`` seconds.
When every first version is out, each user replies in their thread (an Events API ``message``
event) to get version 2. About ``--retry-share`` of all requests are delivered a second time,
as Slack does when an acknowledgement is late (same body, ``X-Slack-Retry-Num: 1``), half at
once and half after the first was acknowledged.

Figures: acknowledgement latency (HTTP response time of every request, retries included),
messages lost (expected versions that never appeared), duplicate answers (parents or versions
beyond one per request), and calls per streamed message per second (``chat.appendStream``,
``chat.stopStream`` and ``chat.update``: all the calls on a version message over the time from
its start to its last call; and the most calls on one message within any 1 s). All sessions
share one channel, where the adapter posts at most one new message a second (Slack's limit), so
the wall time grows with ``--sessions``; Slack's rate limits are measured by
``bench.slack_streaming``.

    python -m bench.slack_sessions [--sessions 100] [--latency 1.0] [--retry-share 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bench.stats import pct
from bot.adapters.slack import SlackAdapter
from bot.app import build
from bot.config import Config
from bot.server import make_web_app
from engines import FakeEngine
from tests.fakes.slack_api import BOT_USER, TEAM, FakeSlack

SECRET = "bench-secret"
CODE = "```python\n" + "".join(f"value_{i} = compute({i})\n" for i in range(40)) + "```\nDone.\n"


class Sender:
    """Signs and posts requests to the endpoint; records each acknowledgement time."""

    def __init__(self, http: aiohttp.ClientSession, url: str, rng: random.Random, share: float):
        self.http, self.url, self.rng, self.share = http, url, rng, share
        self.acks: list[float] = []
        self.failed = 0
        self.retries = 0

    async def _post(self, body: str, content_type: str, retry: int | None) -> None:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
                timestamp=stamp, body=body
            )
            or "",
        }
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        began = time.perf_counter()
        async with self.http.post(self.url, data=body, headers=headers) as response:
            await response.read()
            self.failed += response.status != 200
        self.acks.append(time.perf_counter() - began)

    async def send(self, body: str, content_type: str) -> None:
        """Post once; for a share of requests, deliver it again as Slack's retry."""
        if self.rng.random() >= self.share:
            await self._post(body, content_type, None)
            return
        self.retries += 1
        if self.rng.random() < 0.5:  # the retry overtakes the first delivery
            await asyncio.gather(
                self._post(body, content_type, None), self._post(body, content_type, 1)
            )
        else:  # the retry comes after the first was acknowledged
            await self._post(body, content_type, None)
            await self._post(body, content_type, 1)


async def run(sessions: int, latency: float, share: float, seed: int) -> None:
    engine = FakeEngine(lambda r: CODE, delay=latency, chunk_size=16)
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        with tempfile.TemporaryDirectory() as tmp:
            config = Config(
                db_path=Path(tmp) / "bench.db",
                model="fake:echo",
                rate_limit_per_minute=0,
                slack_bot_token="xoxb-bench",
                slack_signing_secret=SECRET,
                slack_api_url=slack.base_url,
            )
            app = await build(config, engine_factory=lambda spec: engine)
            await app.start()
            [adapter] = app.adapters  # edits at most once a second (Config.edit_interval)
            assert isinstance(adapter, SlackAdapter)
            await adapter.start()
            runner = web.AppRunner(make_web_app(app), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            sender = Sender(
                http, f"http://127.0.0.1:{port}/slack/events", random.Random(seed), share
            )
            began = time.perf_counter()

            def command(i: int) -> str:
                return urlencode(
                    {
                        "team_id": TEAM,
                        "channel_id": "C1",
                        "user_id": f"U{i}",
                        "command": "/code",
                        "text": f"python task number {i}",
                        "response_url": slack.response_url(f"u{i}"),
                        "trigger_id": f"trigger-{i}",
                    }
                )

            await asyncio.gather(
                *(
                    sender.send(command(i), "application/x-www-form-urlencoded")
                    for i in range(sessions)
                )
            )
            await adapter.drain()
            parents = slack.top_level("C1")

            def event(i: int, parent_ts: str) -> str:
                message = {
                    "type": "message",
                    "channel": "C1",
                    "user": f"U{i}",
                    "text": f"now change {i}",
                    "ts": f"1800000000.{i:06d}",
                    "thread_ts": parent_ts,
                }
                return json.dumps(
                    {
                        "team_id": TEAM,
                        "api_app_id": "A1",
                        "type": "event_callback",
                        "event_id": f"Ev{i}",
                        "event_time": int(time.time()),
                        "event": message,
                        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
                    }
                )

            await asyncio.gather(
                *(sender.send(event(i, p.ts), "application/json") for i, p in enumerate(parents))
            )
            await adapter.drain()
            wall = time.perf_counter() - began
            await adapter.aclose()
            await runner.cleanup()
            await app.aclose()

    # -- figures -----------------------------------------------------------------------------
    per_user = defaultdict(list)
    for parent in parents:
        per_user[parent.body().split(">", 1)[0].removeprefix("<@")].append(parent)
    lost = sum(1 for i in range(sessions) if not per_user.get(f"U{i}"))
    duplicates = sum(len(found) - 1 for found in per_user.values())
    for parent in parents:
        versions = [m for m in slack.thread("C1", parent.ts) if "Version " in m.body()]
        finished = [m for m in versions if "value_39 = compute(39)" in m.body()]
        lost += max(2 - len(finished), 0)  # version 1 and version 2, each complete
        duplicates += max(len(versions) - 2, 0)

    updates: dict[str, list[float]] = defaultdict(list)
    for call in slack.calls:
        if call.method in ("chat.appendStream", "chat.stopStream", "chat.update"):
            updates[call.params["ts"]].append(call.at)
    rates: list[float] = []
    peaks: list[int] = []
    for ts, times in updates.items():
        posted = slack.messages[("C1", ts)].at
        rates.append(len(times) / (times[-1] - posted))  # every edit, over the message's life
        peaks.append(max(sum(1 for t in times if s <= t < s + 1.0) for s in times))

    ms = [a * 1000 for a in sender.acks]
    print(
        f"\nsessions={sessions} engine latency={latency:.1f} s  requests={len(ms)} "
        f"(retried {sender.retries}, non-200 {sender.failed})  wall {wall:.1f} s"
    )
    print(
        f"ack latency: p50 {statistics.median(ms):.1f} ms  p99 {pct(ms, 99):.1f} ms  "
        f"max {max(ms):.1f} ms   (goal: p99 well under 3000 ms)"
    )
    print(f"messages lost: {lost}   duplicate answers: {duplicates}   (both must be 0)")
    print(
        f"appends, stops and edits: {sum(map(len, updates.values()))} calls on "
        f"{len(updates)} messages; per message {statistics.mean(map(len, updates.values())):.1f}"
    )
    print(
        f"calls per message per second (start to last call): "
        f"mean {statistics.mean(rates):.2f}  p99 {pct(rates, 99):.2f}  max {max(rates):.2f}"
    )
    print(f"most calls on one message within any 1 s (final included): {max(peaks)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--retry-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.latency, args.retry_share, args.seed))


if __name__ == "__main__":
    main()
