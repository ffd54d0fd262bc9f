"""Slack under its own rate limits: N answers at once in one workspace.

N users each send a signed ``/code`` to ``POST /slack/events`` of the real web app at the same
instant (each in their own channel, as in direct messages and the app's pane, or ``--channels``
fewer); the adapter talks to the loopback fake Web API with Slack's documented rate limits
enforced (``chat.update`` and ``chat.delete`` Tier 3, 50 a minute per workspace;
``chat.appendStream`` Tier 4, 100; one new message a second per channel, with short bursts),
which answers 429 with ``Retry-After`` beyond them. The engine streams each answer over
``--latency`` seconds and notes when it sent its last piece.

Modes: ``stream`` (native streaming, the default path), ``edit`` (a workspace that refuses
``chat.startStream``: one message edited every ``--edit-interval``), and with ``--unpaced``
the same without the adapter's budget (what the adapter did before it had one).

Figures per mode: calls refused with 429 (by method), Web API calls per answer (by method),
answers whose final version appeared, and the time from the engine's last piece of an answer
to its final message: for a stream, the stop (the whole answer and its buttons shown) and the
card that replaces the streamed text; for edits, the edit that shows the version.

    python -m bench.slack_streaming [--answers 20] [--latency 5] [--mode both] [--channels N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bench.stats import pct
from bot.adapters.slack import SlackAdapter, pace
from bot.app import build
from bot.config import Config
from bot.server import make_web_app
from engines import FakeEngine, GenerationRequest, Usage
from tests.fakes.slack_api import SLACK_RATE_LIMITS, TEAM, FakeSlack

SECRET = "bench-secret"
CODE = "```python\n" + "".join(f"value_{i} = compute({i})\n" for i in range(40)) + "```\nDone.\n"


class TimedEngine(FakeEngine):
    """A FakeEngine that notes when it sent the last piece of each answer (by prompt)."""

    def __init__(self, latency: float) -> None:
        super().__init__(lambda r: CODE, delay=latency, chunk_size=16)
        self.last_piece: dict[str, float] = {}

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        pieces = super()._stream(request, usage)
        async for piece in pieces:
            self.last_piece[request.messages[-1].content] = time.monotonic()
            yield piece


@dataclass
class Figures:
    mode: str
    answers: int
    wall: float
    limited: Counter[str]
    calls: Counter[str]
    shown: int = 0  # answers whose final version appeared
    to_stop: list[float] = field(default_factory=list)  # ms, last piece -> stream stopped
    to_card: list[float] = field(default_factory=list)  # ms, last piece -> final version card


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {statistics.median(values):.0f} ms  p95 {pct(values, 95):.0f} ms  "
        f"max {max(values):.0f} ms"
    )


async def run(
    mode: str, answers: int, latency: float, channels: int, interval: float, api: float
) -> Figures:
    engine = TimedEngine(latency)
    limits = dict(pace.LIMITS)
    if mode.endswith("unpaced"):  # the adapter without its budget
        for name, limit in limits.items():
            pace.LIMITS[name] = pace.Limit(1e9, 1e9, limit.per_channel)
    try:
        async with FakeSlack(limits=SLACK_RATE_LIMITS, latency=api) as slack:
            if mode.startswith("edit"):
                slack.fail("chat.startStream", "unknown_method", times=answers)
            async with aiohttp.ClientSession() as http:
                with tempfile.TemporaryDirectory() as tmp:
                    config = Config(
                        db_path=Path(tmp) / "bench.db",
                        model="fake:echo",
                        rate_limit_per_minute=0,
                        edit_interval=interval,
                        slack_bot_token="xoxb-bench",
                        slack_signing_secret=SECRET,
                        slack_api_url=slack.base_url,
                    )
                    app = await build(config, engine_factory=lambda spec: engine)
                    await app.start()
                    [adapter] = app.adapters
                    assert isinstance(adapter, SlackAdapter)
                    await adapter.start()
                    runner = web.AppRunner(make_web_app(app), access_log=None)
                    await runner.setup()
                    await web.TCPSite(runner, "127.0.0.1", 0).start()
                    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"

                    async def command(i: int) -> None:
                        body = urlencode(
                            {
                                "team_id": TEAM,
                                "channel_id": f"C{i % channels}",
                                "user_id": f"U{i}",
                                "command": "/code",
                                "text": f"python task number {i}",
                                "response_url": slack.response_url(f"u{i}"),
                                "trigger_id": f"trigger-{i}",
                            }
                        )
                        stamp = str(int(time.time()))
                        signature = SignatureVerifier(SECRET).generate_signature(
                            timestamp=stamp, body=body
                        )
                        headers = {
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Slack-Request-Timestamp": stamp,
                            "X-Slack-Signature": signature or "",
                        }
                        async with http.post(url, data=body, headers=headers) as response:
                            assert response.status == 200

                    began = time.perf_counter()
                    await asyncio.gather(*(command(i) for i in range(answers)))
                    await adapter.drain()
                    wall = time.perf_counter() - began
                    await adapter.aclose()
                    await runner.cleanup()
                    await app.aclose()
    finally:
        pace.LIMITS.update(limits)

    calls = Counter(c.method for c in slack.calls if c.method != "auth.test")
    figures = Figures(mode, answers, wall, Counter(c.method for c in slack.limited), calls)
    for i in range(answers):
        channel = f"C{i % channels}"
        asked = re.compile(rf"task number {i}\b")
        parents = [p for p in slack.top_level(channel) if asked.search(p.body())]
        if not parents:  # its post was refused: the user was told, nothing was written
            continue
        finished = [m for m in slack.thread(channel, parents[0].ts) if "Version 1 of" in m.body()]
        last = engine.last_piece.get(f"task number {i}")
        if not finished or last is None or "value_39 = compute(39)" not in finished[0].body():
            continue
        figures.shown += 1
        ts = finished[0].ts
        on_it = [c for c in slack.calls if c.params.get("ts") == ts and c not in slack.limited]
        stops = [c.at for c in on_it if c.method == "chat.stopStream"]
        cards = [c.at for c in on_it if c.method == "chat.update"] or [finished[0].at]
        if stops:
            figures.to_stop.append((stops[-1] - last) * 1000)
        figures.to_card.append((cards[-1] - last) * 1000)
    return figures


def report(f: Figures) -> None:
    limited = ", ".join(f"{m} {n}" for m, n in f.limited.most_common()) or "none"
    per = ", ".join(f"{m} {n / f.answers:.1f}" for m, n in f.calls.most_common())
    print(f"\n[{f.mode}] {f.answers} answers at once, wall {f.wall:.1f} s")
    print(f"  429s: {sum(f.limited.values())} ({limited})   (goal: 0)")
    print(f"  calls per answer: {sum(f.calls.values()) / f.answers:.1f} ({per})")
    print(f"  final version shown: {f.shown} of {f.answers}")
    if f.to_stop:
        print(f"  last piece -> stream stopped (answer and buttons shown): {_ms(f.to_stop)}")
    print(f"  last piece -> final version card: {_ms(f.to_card)}   (goal: <= 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--latency", type=float, default=5.0, help="seconds per answer")
    parser.add_argument("--channels", type=int, default=0, help="default: one per answer")
    parser.add_argument("--edit-interval", type=float, default=1.0)
    parser.add_argument("--api-latency", type=float, default=0.02, help="seconds per call")
    parser.add_argument(
        "--mode", choices=["stream", "edit", "edit-unpaced", "both", "all"], default="both"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the figures say what went wrong
    modes = {"both": ["stream", "edit"], "all": ["stream", "edit", "edit-unpaced"]}
    channels = args.channels or args.answers
    print(
        f"Slack limits enforced by the fake; {args.answers} answers in {channels} channel(s), "
        f"{args.latency:.1f} s each, {args.api_latency * 1000:.0f} ms a Web API call"
    )
    for mode in modes.get(args.mode, [args.mode]):
        report(
            asyncio.run(
                run(
                    mode,
                    args.answers,
                    args.latency,
                    channels,
                    args.edit_interval,
                    args.api_latency,
                )
            )
        )


if __name__ == "__main__":
    main()
