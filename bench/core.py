"""Bot overhead: many concurrent sessions through the session core with a fixed-latency engine.

Each of N sessions is started and then given T turns (the first generates, the rest adjust),
against a FakeEngine that takes ``--latency`` seconds per answer. Two arrival patterns run:
"steady": sessions start spread evenly over ``--ramp`` seconds, so all N are in flight at once
but their messages interleave as real users' do; "burst": all N send at the same instant, every
turn (the worst case: each message queues behind the others' database writes).
Per-message overhead = wall time of a turn minus the engine's time; event-loop lag = how late a
1 ms ticker wakes up while all this runs. Goals: overhead p99 <= 10 ms, lag <= 20 ms.

    python -m bench.core [--sessions 200] [--turns 3] [--latency 0.5] [--ramp 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from bot.app import build
from bot.config import Config
from bot.values import Caller, Done
from engines import FakeEngine
from storage import SessionKey

CODE = "```python\n" + "def f(x):\n    return x * 2\n" * 20 + "```\nA short note.\n"


class TimedEngine(FakeEngine):
    """A FakeEngine that records, per request, the time spent inside its own stream.

    The fake sleeps in pieces, and each asyncio sleep may overshoot by up to a millisecond
    (epoll's resolution); measuring the engine's real time keeps that out of the bot's figure.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spent: dict[str, float] = {}

    async def _stream(self, request, usage):  # type: ignore[no-untyped-def, override]
        inner = super()._stream(request, usage)
        spent = 0.0
        while True:
            began = time.perf_counter()
            try:
                chunk = await anext(inner)
            except StopAsyncIteration:
                break
            finally:
                spent += time.perf_counter() - began
            yield chunk
        self.spent[request.messages[-1].content] = spent


async def lag_monitor(stop: asyncio.Event, lags: list[float], tick: float = 0.001) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(tick)
        lags.append(loop.time() - before - tick)


async def run(sessions: int, turns: int, latency: float, ramp: float) -> None:
    engine = TimedEngine(lambda r: CODE, delay=latency, chunk_size=64)
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db_path=Path(tmp) / "bench.db", model="fake:echo", rate_limit_per_minute=0)
        app = await build(config, engine_factory=lambda spec: engine)
        await app.start()
        overheads: list[float] = []

        async def one_session(i: int) -> None:
            await asyncio.sleep(ramp * i / sessions)
            caller = Caller(platform="bench", workspace="w", user=f"u{i % 50}", channel="c")
            key = SessionKey(platform="bench", workspace="w", channel="c", thread=str(i))
            session = await app.service.start(caller=caller, key=key, prompt=f"task {i}")
            for t in range(turns):
                text = f"change {t} of {i}"
                began = time.perf_counter()
                async for event in app.service.turn(session, caller, text):
                    last = event
                assert isinstance(last, Done)
                overheads.append(time.perf_counter() - began - engine.spent[text])

        stop = asyncio.Event()
        lags: list[float] = []
        monitor = asyncio.create_task(lag_monitor(stop, lags))
        began = time.perf_counter()
        await asyncio.gather(*(one_session(i) for i in range(sessions)))
        wall = time.perf_counter() - began
        stop.set()
        await monitor
        await app.aclose()

    ms = [o * 1000 for o in overheads]
    mode = f"steady (starts spread over {ramp:.1f} s)" if ramp else "burst (all at once)"
    print(f"\n{mode}: sessions={sessions} turns/session={turns} latency={latency * 1000:.0f} ms")
    print(f"messages: {len(ms)} in {wall:.2f} s wall ({len(ms) / wall:.0f} msg/s)")
    print(
        f"overhead per message: p50 {statistics.median(ms):.2f} ms  p99 {pct(ms, 99):.2f} ms  "
        f"max {max(ms):.2f} ms   (goal p99 <= 10 ms)"
    )
    print(
        f"event-loop lag: p50 {statistics.median(lags) * 1000:.2f} ms  "
        f"p99 {pct(lags, 99) * 1000:.2f} ms  worst {max(lags) * 1000:.2f} ms   (goal <= 20 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--ramp", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.turns, args.latency, args.ramp))
    asyncio.run(run(args.sessions, args.turns, args.latency, 0.0))


if __name__ == "__main__":
    main()
