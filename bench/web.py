"""The web page in a real headless Chromium: how soon streamed text shows, how fast a big
session's page loads.

* **First text**: from the moment the engine hands over its first piece of answer to the
  moment that piece is in the page (a MutationObserver on the live box, in the page's own
  clock; both clocks are this machine's wall clock). The path: presenter → API surface →
  SSE over loopback → the page's script → the DOM. The engine holds after that piece until
  the page has shown it (tests/bot/web/browser.py's GatedEngine), so every trial measures
  exactly one piece.
* **Page load**: ``/s/{id}`` of a session with 100 versions (40 lines of code each, a few
  runs) and of a session with one, navigation start to the load event (Navigation Timing),
  and the server's part of it (request start to response end).

Figures, never assertions. Medians of ``--trials`` (default 7).

    python -m bench.web [--trials 7] [--versions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from bot.adapters import console_caller
from bot.app import App, build
from bot.config import Config
from bot.server import make_web_app
from bot.web import store_login_url
from storage import SessionKey
from tests.bot.web.browser import Browser, GatedEngine, chromium, missing

OBSERVE = """
const live = document.getElementById("live");
window.firstText = null;
new MutationObserver(() => {
  if (window.firstText === null && live.textContent.includes(arguments[0])) {
    window.firstText = performance.timeOrigin + performance.now();
  }
}).observe(live, {childList: true, characterData: true, subtree: true});
"""
TIMING = """
const nav = performance.getEntriesByType("navigation")[0];
return [nav.loadEventEnd - nav.startTime, nav.responseEnd - nav.requestStart];
"""


async def _session(app: App, versions: int, *, lines: int = 40) -> int:
    caller = console_caller()
    key = SessionKey(platform=caller.platform, workspace=caller.workspace, channel="bench",
                     thread=f"bench-{versions}")  # fmt: skip
    session = await app.store.create_session(
        key=key, owner=caller.user, language="python", model="fake:echo", title="big history"
    )
    for number in range(1, versions + 1):
        code = "\n".join(f"value_{i} = {number} * {i}  # line {i}" for i in range(lines))
        version = await app.store.add_version(
            session.id, request=f"change {number}: make line {number % lines} different",
            code=code, note=f"Version {number} changes one line.", model="fake:echo",
            prompt_tokens=None, completion_tokens=None, latency_ms=900,
        )  # fmt: skip
        if number > versions - 3:
            await app.store.add_run(
                version.id, kind="run", status="ok", exit_code=0, stdout="ok\n" * 20,
                stderr="", duration_ms=30, peak_memory_kb=5000, limit_hit=None,
                compile_output="",
            )  # fmt: skip
    return session.id


async def first_text(engine: GatedEngine, browser: Browser, base: str, trials: int) -> list[float]:
    """Milliseconds from the engine's first piece to that piece shown, once per trial."""
    found: list[float] = []
    for trial in range(trials):
        marker = f"FIRST{trial}"
        answer = f"{marker} piece\n```python\nprint({trial})\n```\n"
        engine.responder = lambda request, answer=answer: answer
        engine.gate.clear()
        await browser.get(base + "/")
        await browser.script(OBSERVE, marker)
        prompt = await browser.find("#prompt")
        await browser.do(prompt.send_keys, f"trial {trial}")
        await browser.do((await browser.find('form[data-stream] button[type="submit"]')).click)
        shown = await browser.until(lambda d: d.execute_script("return window.firstText"))
        assert engine.first_piece_at is not None
        found.append(float(shown) - engine.first_piece_at * 1000)
        engine.gate.set()
        await browser.until(lambda d: "/s/" in d.current_url)
    return found


async def page_load(browser: Browser, url: str, trials: int) -> tuple[list[float], list[float]]:
    loads, server = [], []
    for _ in range(trials):
        await browser.get(url)
        total, answer = await browser.script(TIMING)
        loads.append(float(total))
        server.append(float(answer))
    return loads, server


async def main(trials: int, versions: int) -> None:
    reason = missing()
    if reason:
        raise SystemExit(f"no browser: {reason}")
    engine = GatedEngine(chunk_size=12)
    with tempfile.TemporaryDirectory() as folder:
        config = Config(
            db_path=Path(folder) / "bench.db", model="fake:echo", rate_limit_per_minute=0
        )
        app = await build(config, engine_factory=lambda spec: engine, adapters=False)
        await app.start()
        runner = web.AppRunner(make_web_app(app), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        big = await _session(app, versions)
        small = await _session(app, 1)
        try:
            with chromium() as driver:
                browser = Browser(driver, Path(folder))
                await browser.get(await store_login_url(app.store, console_caller(), base=base))
                await browser.until(lambda d: d.find_elements("css selector", ".who"))
                first = await first_text(engine, browser, base, trials)
                await page_load(browser, f"{base}/s/{big}", 2)  # warm: static files cached
                big_load, big_server = await page_load(browser, f"{base}/s/{big}", trials)
                small_load, small_server = await page_load(browser, f"{base}/s/{small}", trials)
        finally:
            await runner.cleanup()
            await app.aclose()
    med = statistics.median
    print(f"web page, headless Chromium, medians of {trials} (ms)")
    print(f"  engine's first piece → shown in the page: {med(first):7.1f}"
          f"   (min {min(first):.1f}, max {max(first):.1f})")  # fmt: skip
    print(f"  /s/ID with {versions} versions: load {med(big_load):7.1f}"
          f"   server {med(big_server):.1f}")  # fmt: skip
    print(f"  /s/ID with 1 version:   load {med(small_load):7.1f}"
          f"   server {med(small_server):.1f}")  # fmt: skip


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--versions", type=int, default=100)
    return parser.parse_args()


if __name__ == "__main__":
    options = _args()
    asyncio.run(main(options.trials, options.versions))
