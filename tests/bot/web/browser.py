"""A real headless Chromium for the page's tests and its benchmark, driven by Selenium.

Selenium's calls block (they talk HTTP to chromedriver), while the page is served by the
test's own event loop: :class:`Browser` runs every call in a worker thread, so the loop keeps
serving the browser meanwhile. :class:`GatedEngine` is the FakeEngine with a gate after its
first piece of answer: a test sees the answer half-written in the page, deterministically,
then lets it finish.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from engines import FakeEngine, GenerationRequest, Usage

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why no browser test can run here (None: they can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (Debian: apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile of its own, closed (and removed) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="codethread-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's own sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """The driver, with every call off the event loop."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    async def do(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def get(self, url: str) -> None:
        await self.do(self.driver.get, url)

    async def until(self, condition: Callable[[Any], T], seconds: float = 30) -> T:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(  # the page may be between two loads while it is asked
            self.driver,
            seconds,
            poll_frequency=0.02,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        return await self.do(wait.until, condition)

    async def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return await self.until(lambda d: d.find_element(By.CSS_SELECTOR, css))

    async def text(self, css: str) -> str:
        element = await self.find(css)
        return str(await self.do(lambda: element.text))

    async def script(self, source: str, *args: Any) -> Any:
        return await self.do(self.driver.execute_script, source, *args)

    async def path(self) -> str:
        return str(await self.script("return location.pathname + location.search"))

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.do(self.driver.save_screenshot, str(path))
        return path

    async def forget(self) -> None:
        """No cookies of earlier tests (a cookie is per host, whatever the port)."""
        await self.do(self.driver.execute_cdp_cmd, "Network.clearBrowserCookies", {})

    async def problems(self) -> list[str]:
        """What the browser's console reported since the last call (CSP violations, errors)."""
        entries = await self.do(self.driver.get_log, "browser")
        return [e["message"] for e in entries if e["level"] in ("SEVERE", "WARNING")]


class GatedEngine(FakeEngine):
    """Streams like FakeEngine, but holds after the first piece until :attr:`gate` is set;
    :attr:`first_piece_at` is when that piece left (``time.time()``, for the benchmark)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.first_piece_at: float | None = None

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        first = True
        async for piece in super()._stream(request, usage):
            if first:
                self.first_piece_at = time.time()
            yield piece
            if first:
                first = False
                await self.gate.wait()
