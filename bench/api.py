"""API overhead: bench/core.py's concurrent sessions, through HTTP on loopback.

The bot runs in a child process (``codethread serve``'s web app on 127.0.0.1, a fixed-latency
engine); this process is the client, so that the server's event loop does only the server's
work, as it would with remote clients. Each arrival pattern (N sessions, T turns each) runs
three times: straight through the session core inside the server process (as bench/core.py
measures it), then through ``POST /api/sessions/{id}/turns`` answered once as JSON, then the
same call streamed as server-sent events (read to the last event).

Per-message overhead = a turn's time minus the engine's own time (the server reports it),
measured twice: in the server (from the request's arrival to its last byte handed to the
socket) and at the client (the whole HTTP call). The API's *added* overhead is the API's
figure minus the core's at the same percentile. Patterns: one session at a time
(``--serial`` sessions: the API's own cost, with no queueing), "steady" (starts spread over
``--ramp`` seconds) and "burst" (all at once: every turn queues behind the others' work on the
one event loop). Goal: added p50 <= 2 ms.

    python -m bench.api [--sessions 200] [--turns 3] [--latency 0.5] [--ramp 1.0] [--serial 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bench.core import CODE, TimedEngine
from bench.stats import pct
from bot import tokens
from bot.app import App, build
from bot.config import Config
from bot.server import make_web_app, runner
from bot.values import Caller, Done
from storage import SessionKey

ROOT = Path(__file__).resolve().parent.parent
USERS = 50
Turn = Callable[[int], Awaitable[float]]  # turn number -> overhead in seconds
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def burst(
    sessions: int, turns: int, ramp: float, setup: Callable[[int], Awaitable[Turn]]
) -> list[float]:
    """Every session set up, then all of them sending their turns: at once (``ramp`` 0),
    starting spread evenly over ``ramp`` seconds, or (``ramp`` below 0) one session after
    another; the overheads."""
    made = await asyncio.gather(*(setup(i) for i in range(sessions)))
    overheads: list[float] = []

    async def one(i: int, turn: Turn) -> None:
        await asyncio.sleep(max(ramp, 0) * i / sessions)
        for t in range(turns):
            overheads.append(await turn(t))

    if ramp < 0:
        for i, turn in enumerate(made):
            await one(i, turn)
    else:
        await asyncio.gather(*(one(i, turn) for i, turn in enumerate(made)))
    return overheads


# -- the server process ---------------------------------------------------------------------


def core_setup(app: App, engine: TimedEngine) -> Callable[[int], Awaitable[Turn]]:
    async def setup(i: int) -> Turn:
        caller = Caller(platform="bench", workspace="w", user=f"u{i % USERS}", channel="c")
        key = SessionKey(platform="bench", workspace="w", channel="c", thread=str(i))
        session = await app.service.start(caller=caller, key=key, prompt=f"task {i}")

        async def turn(t: int) -> float:
            text = f"core change {t} of {i}"
            began = time.perf_counter()
            async for event in app.service.turn(session, caller, text):
                last = event
            assert isinstance(last, Done)
            return time.perf_counter() - began - engine.spent[text]

        return turn

    return setup


async def serve(latency: float) -> None:
    """The bot's web app, plus what the bench needs: a route that runs the core's burst here,
    one that reports the engine's time and the API's handling time per turn (a middleware
    outside every other one times each turn from its arrival to its last byte handed over).
    Prints the port and the users' tokens, then serves until stdin closes."""
    engine = TimedEngine(lambda r: CODE, delay=latency, chunk_size=64)
    handled: dict[str, float] = {}

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        response = await handler(request)
        if request.path.endswith("/turns"):
            handled[(await request.json())["text"]] = time.perf_counter() - began
        return response

    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db_path=Path(tmp) / "bench.db", model="fake:echo", rate_limit_per_minute=0)
        app = await build(config, engine_factory=lambda spec: engine, adapters=False)
        await app.start()
        web_app = make_web_app(app)
        web_app.middlewares.insert(0, timing)

        async def core(request: web.Request) -> web.Response:
            sessions, turns = int(request.query["sessions"]), int(request.query["turns"])
            ramp = float(request.query["ramp"])
            return web.json_response(await burst(sessions, turns, ramp, core_setup(app, engine)))

        async def times(request: web.Request) -> web.Response:
            return web.json_response({"engine": engine.spent, "handled": handled})

        web_app.router.add_post("/bench/core", core)
        web_app.router.add_get("/bench/times", times)
        site_runner = runner(web_app)
        await site_runner.setup()
        site = web.TCPSite(site_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        auth = [(await tokens.issue(app.store, f"u{u}", days=1))[0] for u in range(USERS)]
        print(json.dumps({"port": port, "tokens": auth}), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await site_runner.cleanup()
            await app.aclose()


# -- the client process ---------------------------------------------------------------------


def api_setup(
    http: aiohttp.ClientSession, base: str, auth: list[str], started: dict[str, float], tag: str
) -> Callable[[int], Awaitable[Turn]]:
    """Sessions made through the API; each turn's wall time, keyed by its text (the engine's
    time is subtracted once the server reports it)."""
    accept = {"Accept": "text/event-stream"} if tag == "sse" else {}

    async def setup(i: int) -> Turn:
        headers = {"Authorization": f"Bearer {auth[i % USERS]}"}
        async with http.post(
            f"{base}/api/sessions", json={"prompt": f"{tag} task {i}"}, headers=headers
        ) as made:
            assert made.status == 201, await made.text()
            sid = (await made.json())["session"]["id"]

        async def turn(t: int) -> float:
            text = f"{tag} change {t} of {i}"
            began = time.perf_counter()
            async with http.post(
                f"{base}/api/sessions/{sid}/turns", json={"text": text}, headers=headers | accept
            ) as response:
                body = await response.read()
            wall = time.perf_counter() - began
            assert response.status == 200, body[:200]
            assert (b"event: done" in body) if accept else (b'"version"' in body)
            started[text] = wall
            return 0.0

        return turn

    return setup


def report(name: str, ms: list[float], core: list[float] | None) -> None:
    p50, p99 = statistics.median(ms), pct(ms, 99)
    line = f"{name:<26} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
    if core is not None:
        added50, added99 = p50 - statistics.median(core), p99 - pct(core, 99)
        line += f"   added: p50 {added50:+6.2f} ms  p99 {added99:+7.2f} ms"
    print(line)


async def run(sessions: int, turns: int, latency: float, ramp: float) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api", "--serve", "--latency", str(latency),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    hello: dict[str, Any] = json.loads(await child.stdout.readline())
    base, auth = f"http://127.0.0.1:{hello['port']}", hello["tokens"]
    walls: dict[str, dict[str, float]] = {"json": {}, "sse": {}}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            query = {"sessions": sessions, "turns": turns, "ramp": ramp}
            async with http.post(f"{base}/bench/core", params=query) as response:
                core = [o * 1000 for o in await response.json()]
            for tag, measured in walls.items():
                await burst(sessions, turns, ramp, api_setup(http, base, auth, measured, tag))
            async with http.get(f"{base}/bench/times") as response:
                times: dict[str, dict[str, float]] = await response.json()
    finally:
        child.stdin.close()
        await child.wait()
    spent, handled = times["engine"], times["handled"]
    mode = (
        "one at a time (the API's own cost)"
        if ramp < 0
        else f"steady (starts spread over {ramp:.1f} s)"
        if ramp
        else "burst (all at once)"
    )
    print(f"\n{mode}: sessions={sessions} turns/session={turns} latency={latency * 1000:.0f} ms")
    print("overhead per message (wall minus the engine's own time):")
    report("core (in the server)", core, None)
    for tag, name in (("json", "JSON"), ("sse", "SSE")):
        server = [(handled[text] - spent[text]) * 1000 for text in walls[tag]]
        report(f"API {name}, in the server", server, core)
        client = [(wall - spent[text]) * 1000 for text, wall in walls[tag].items()]
        report(f"API {name}, at the client", client, core)
    print("goal: added p50 <= 2 ms (in the server; the client's own HTTP work comes on top)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--ramp", type=float, default=1.0)
    parser.add_argument("--serial", type=int, default=20, help="sessions run one at a time")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.latency))
    else:
        if args.serial:
            asyncio.run(run(args.serial, args.turns, args.latency, -1.0))
        asyncio.run(run(args.sessions, args.turns, args.latency, args.ramp))
        asyncio.run(run(args.sessions, args.turns, args.latency, 0.0))


if __name__ == "__main__":
    main()
