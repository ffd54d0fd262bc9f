"""A bounded pool of simultaneous sandboxed runs; the others wait in line, first come first served.

Runs are CPU-bound, so the default size is one per core (``os.cpu_count()``). A caller that has
to wait learns its place: ``on_queued(position)`` is called when it joins the line (position 1
= next to start) and again each time it moves up. It is not called for a run that starts at
once. A waiting caller that is cancelled leaves the line; the others move up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sandbox.limits import Limits
from sandbox.results import RunResult
from sandbox.runner import Sandbox

__all__ = ["OnQueued", "SandboxPool"]

OnQueued = Callable[[int], None]


@dataclass(slots=True, eq=False)
class _Waiter:
    future: asyncio.Future[None]
    on_queued: OnQueued | None


class SandboxPool:
    """At most ``size`` runs of ``sandbox`` at once (default: one per core)."""

    def __init__(self, sandbox: Sandbox, *, size: int | None = None) -> None:
        self.sandbox = sandbox
        self.size = size if size is not None else max(1, os.cpu_count() or 1)
        if self.size < 1:
            raise ValueError(f"size must be at least 1, not {self.size}")
        self._active = 0
        self._line: list[_Waiter] = []

    def __repr__(self) -> str:
        return f"SandboxPool(size={self.size}, active={self._active}, waiting={self.waiting})"

    async def check(self) -> str | None:
        """Why this pool's runs cannot work (None: they can); see :meth:`Sandbox.check`."""
        return await self.sandbox.check()

    def available(self) -> bool:
        """Whether runs can start now (the sandbox's tools are there)."""
        return self.sandbox.available()

    @property
    def active(self) -> int:
        """Runs going on now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Runs waiting for a free slot."""
        return len(self._line)

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        args: Sequence[str] = (),
        files: Mapping[str, bytes | str] | None = None,
        limits: Limits | None = None,
        on_queued: OnQueued | None = None,
    ) -> RunResult:
        """:meth:`Sandbox.run` once a slot is free."""
        async with self.slot(on_queued):
            return await self.sandbox.run(
                language, code, stdin=stdin, args=args, files=files, limits=limits
            )

    async def run_tests(
        self,
        language: str,
        code: str,
        tests: str,
        *,
        limits: Limits | None = None,
        on_queued: OnQueued | None = None,
    ) -> RunResult:
        """:meth:`Sandbox.run_tests` once a slot is free."""
        async with self.slot(on_queued):
            return await self.sandbox.run_tests(language, code, tests, limits=limits)

    @asynccontextmanager
    async def slot(self, on_queued: OnQueued | None = None) -> AsyncIterator[None]:
        """Hold one of the pool's slots for the body, waiting in line for it if needed."""
        await self._acquire(on_queued)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, on_queued: OnQueued | None) -> None:
        if self._active < self.size and not self._line:
            self._active += 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_queued)
        if on_queued is not None:
            on_queued(len(self._line) + 1)  # before joining: an error leaves nothing behind
        self._line.append(waiter)
        try:
            await waiter.future  # _release hands its slot over: _active already counts us
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            else:
                position = self._line.index(waiter)
                del self._line[position]
                self._announce(position)
            raise

    def _release(self) -> None:
        if self._line:
            waiter = self._line.pop(0)
            waiter.future.set_result(None)
            self._announce(0)
        else:
            self._active -= 1

    def _announce(self, start: int) -> None:
        """Tell the waiters from index ``start`` on their new position."""
        loop = asyncio.get_running_loop()
        for index in range(start, len(self._line)):
            callback = self._line[index].on_queued
            if callback is None:
                continue
            try:
                callback(index + 1)
            except Exception as error:
                loop.call_exception_handler(
                    {"message": "on_queued callback failed", "exception": error}
                )
