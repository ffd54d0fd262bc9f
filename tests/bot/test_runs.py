"""Run, Test, Fix and Repair through the real sandbox (skipped where bubblewrap cannot run)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from bot.app import App, build
from bot.config import Config
from bot.errors import Busy, NotOwner, StaleVersion, UserError
from bot.values import Action, Caller, Done, RunReport
from engines import FakeEngine, GenerationRequest
from storage import SessionKey

from .conftest import CALLER, collect, fenced

_threads = itertools.count()

TESTS = """\
import unittest
from snippet import add

class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""
BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"


@pytest.fixture(autouse=True)
def _needs_sandbox(app: App) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")


def is_tests_request(request: GenerationRequest) -> bool:
    return request.messages[0].content.startswith("You write unit tests")


async def session_with(app: App, fake: FakeEngine, *codes: str, language: str = "python") -> int:
    answers = iter(codes)
    fake.responder = lambda r: (
        fenced(TESTS) if is_tests_request(r) else fenced(next(answers), language)
    )
    key = SessionKey(platform="console", workspace="local", channel="t", thread=f"{next(_threads)}")
    session = await app.service.start(caller=CALLER, key=key, prompt="add", language=language)
    await collect(app.service.turn(session, CALLER, "add two numbers"))
    return session.id


async def test_run_stores_a_real_result(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, "print(1 + 2)")
    report = await app.runs.run(session_id, CALLER)
    assert report.kind == "run" and report.result.status == "ok"
    assert report.result.stdout == "3\n" and report.result.exit_code == 0
    run = await app.store.latest_run(report.version.id)
    assert run is not None
    assert (run.kind, run.status, run.stdout) == ("run", "ok", "3\n")


async def test_scoped_run_is_owner_only_but_the_thread_may_run(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, "print('hi')")
    bob = Caller(platform="console", workspace="local", user="bob")
    with pytest.raises(NotOwner):
        await app.runs.run(session_id, bob, scoped=True)
    assert (await app.runs.run(session_id, bob)).result.stdout == "hi\n"


async def test_failed_test_then_fix_makes_a_version_from_the_failure(
    app: App, fake: FakeEngine
) -> None:
    session_id = await session_with(app, fake, BROKEN, FIXED)
    report = await app.runs.test(session_id, CALLER)
    assert report.kind == "test" and report.result.status == "failed"
    assert report.tests == TESTS.strip()
    assert "AssertionError" in report.result.stderr
    run = await app.store.latest_run(report.version.id)
    assert run is not None
    assert run.kind == "test" and run.tests == TESTS.strip()

    events = await collect(app.runs.fix(session_id, CALLER))
    done = events[-1]
    assert isinstance(done, Done) and done.version.number == 2 and "a + b" in done.version.code
    feedback = fake.requests[-1].messages[-1].content
    assert (
        "unit tests failed" in feedback and "AssertionError" in feedback and "test_add" in feedback
    )
    assert "return a - b" in fake.requests[-1].messages[-2].content  # built from the current code

    assert (await app.runs.test(session_id, CALLER)).result.passed


async def test_fix_needs_a_failure(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, FIXED)
    with pytest.raises(UserError, match="Run or test this version first"):
        await collect(app.runs.fix(session_id, CALLER))
    assert (await app.runs.test(session_id, CALLER)).result.passed
    with pytest.raises(UserError, match="nothing to fix"):
        await collect(app.runs.fix(session_id, CALLER))


async def test_repair_stops_at_the_first_pass(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, BROKEN, FIXED, FIXED)
    events = [e async for e in app.runs.repair(session_id, CALLER)]
    reports = [e for e in events if isinstance(e, RunReport)]
    assert [r.result.passed for r in reports] == [False, True]
    assert [e.version.number for e in events if isinstance(e, Done)] == [2]


async def test_tests_only_for_testable_languages(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, 'echo "hi"', language="bash")
    with pytest.raises(UserError, match="Tests can be written for JavaScript and Python"):
        await app.runs.test(session_id, CALLER)
    assert (await app.runs.run(session_id, CALLER)).result.stdout == "hi\n"


async def test_running_can_be_turned_off(tmp_path: Path, fake: FakeEngine) -> None:
    config = Config(db_path=tmp_path / "off.db", model="fake:echo", run_snippets=False)
    app = await build(config, engine_factory=lambda spec: fake)
    try:
        await app.start()
        assert not app.runs.can_run
        session_id = await session_with(app, fake, "print(1)")
        with pytest.raises(UserError, match="turned off"):
            await app.runs.run(session_id, CALLER)
    finally:
        await app.aclose()


async def test_test_and_fix_act_on_the_latest_version_only(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, BROKEN, BROKEN, FIXED)
    failed = await app.runs.test(session_id, CALLER, number=1)
    assert failed.actions == (Action(kind="fix", session_id=session_id, number=1),)
    session = await app.service.get(session_id)
    await collect(app.service.turn(session, CALLER, "another try"))  # version 2 is the latest
    with pytest.raises(StaleVersion, match="use the buttons of version 2"):
        await app.runs.test(session_id, CALLER, number=1)
    with pytest.raises(StaleVersion, match="version 1 of snippet"):
        await collect(app.runs.fix(session_id, CALLER, number=1))


async def test_one_test_at_a_time_per_session(app: App, fake: FakeEngine) -> None:
    session_id = await session_with(app, fake, FIXED)
    fake.delay = 0.2  # the model takes a while to write the tests
    first = asyncio.create_task(app.runs.test(session_id, CALLER))
    await asyncio.sleep(0.05)
    with pytest.raises(Busy, match="already on their way"):
        await app.runs.test(session_id, CALLER)
    assert (await first).result.passed
    fake.delay = 0
    assert (await app.runs.test(session_id, CALLER)).result.passed  # free again


async def test_a_version_offers_run_and_test_only_where_they_work(
    app: App, fake: FakeEngine
) -> None:
    session_id = await session_with(app, fake, 'echo "hi"', language="bash")
    session, version = await app.service.show(session_id, caller=CALLER)
    assert version is not None
    kinds = [a.kind for a in app.runs.version_actions(session, version)]
    assert kinds == ["run", "input", "download", "delete"]  # no tests for Bash
    report = await app.runs.run(session_id, CALLER)
    assert report.result.passed and report.actions == ()  # nothing to fix
