"""The pool: bounded concurrency, first come first served, positions, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from sandbox import Limits, RunResult, Sandbox, SandboxPool


class GatedSandbox(Sandbox):
    """A Sandbox whose runs wait for the test to open a gate; records what runs at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        self.running: list[str] = []
        self.peak = 0
        self.order: list[str] = []

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        args: Sequence[str] = (),
        files: Mapping[str, bytes | str] | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        self.order.append(code)
        self.running.append(code)
        self.peak = max(self.peak, len(self.running))
        try:
            await self.gates.setdefault(code, asyncio.Event()).wait()
        finally:
            self.running.remove(code)
        return RunResult(status="ok", exit_code=0, stdout=code, stderr="", duration_ms=1)

    async def run_tests(
        self, language: str, code: str, tests: str, *, limits: Limits | None = None
    ) -> RunResult:
        return await self.run(language, code + tests)

    def open(self, code: str) -> None:
        self.gates.setdefault(code, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_runs_queue_in_order_and_learn_their_position() -> None:
    sandbox = GatedSandbox()
    pool = SandboxPool(sandbox, size=2)
    positions: dict[str, list[int]] = {name: [] for name in "abcde"}

    tasks = {
        name: asyncio.create_task(pool.run("python", name, on_queued=positions[name].append))
        for name in "abcde"
    }
    await settle()

    assert sandbox.running == ["a", "b"]
    assert (pool.active, pool.waiting) == (2, 3)
    assert positions == {"a": [], "b": [], "c": [1], "d": [2], "e": [3]}

    sandbox.open("b")
    assert (await tasks["b"]).stdout == "b"
    await settle()
    assert sandbox.running == ["a", "c"]
    assert positions["d"] == [2, 1] and positions["e"] == [3, 2]

    for name in "acde":
        sandbox.open(name)
    results = await asyncio.gather(*tasks.values())

    assert [result.stdout for result in results] == list("abcde")
    assert sandbox.order == list("abcde")
    assert sandbox.peak == 2
    assert (pool.active, pool.waiting) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    sandbox = GatedSandbox()
    pool = SandboxPool(sandbox, size=1)
    positions: list[int] = []
    first = asyncio.create_task(pool.run("python", "a"))
    second = asyncio.create_task(pool.run("python", "b"))
    third = asyncio.create_task(pool.run("python", "c", on_queued=positions.append))
    await settle()

    second.cancel()
    await settle()

    assert positions == [2, 1]
    assert pool.waiting == 1
    sandbox.open("a")
    sandbox.open("c")
    assert (await first).stdout == "a"
    assert (await third).stdout == "c"
    with pytest.raises(asyncio.CancelledError):
        await second
    assert (pool.active, pool.waiting) == (0, 0)


async def test_a_failing_position_callback_does_not_break_the_pool() -> None:
    sandbox = GatedSandbox()
    pool = SandboxPool(sandbox, size=1)
    first = asyncio.create_task(pool.run("python", "a"))
    await settle()

    def broken(position: int) -> None:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        await pool.run("python", "b", on_queued=broken)
    assert pool.waiting == 0
    sandbox.open("a")
    await first
    assert (pool.active, pool.waiting) == (0, 0)


async def test_run_tests_goes_through_the_pool() -> None:
    sandbox = GatedSandbox()
    sandbox.open("codetests")
    pool = SandboxPool(sandbox, size=1)

    result = await pool.run_tests("python", "code", "tests")

    assert result.stdout == "codetests"


def test_size() -> None:
    assert SandboxPool(GatedSandbox()).size >= 1
    with pytest.raises(ValueError, match="at least 1"):
        SandboxPool(GatedSandbox(), size=0)
