"""RunService.judge: given tests against the latest version, stored so that Fix builds on them."""

from __future__ import annotations

import itertools

import pytest

from bot.app import App
from bot.values import Done
from engines import FakeEngine
from storage import SessionKey

from ..conftest import CALLER, collect, fenced

pytestmark = pytest.mark.usefixtures("sandbox_works")

_threads = itertools.count()

TESTS = """\
import unittest

from snippet import double


class DoubleTest(unittest.TestCase):
    def test_double(self):
        self.assertEqual(double(21), 42)
"""
DRIVER = """\
out=$(bash ./candidate.sh 21)
echo "candidate printed: $out"
[ "$out" = 42 ]
"""


async def session(app: App, fake: FakeEngine, language: str, *codes: str) -> int:
    answers = iter(codes)
    fake.responder = lambda request: fenced(next(answers), language)
    key = SessionKey(platform="console", workspace="local", channel="t", thread=f"{next(_threads)}")
    session = await app.service.start(caller=CALLER, key=key, prompt="double", language=language)
    await collect(app.service.turn(session, CALLER, "double a number"))
    return session.id


async def test_judge_stores_a_test_run_that_fix_builds_on(app: App, fake: FakeEngine) -> None:
    broken, right = "def double(x):\n    return x + 2\n", "def double(x):\n    return 2 * x\n"
    session_id = await session(app, fake, "python", broken, right)
    report = await app.runs.judge(session_id, CALLER, TESTS)
    assert report.kind == "test" and report.result.status == "failed" and report.tests == TESTS
    stored = await app.store.latest_run(report.version.id)
    assert stored is not None and stored.kind == "test" and stored.tests == TESTS
    events = await collect(app.runs.fix(session_id, CALLER))
    assert isinstance(events[-1], Done) and events[-1].version.number == 2
    feedback = fake.requests[-1].messages[-1].content
    assert "its unit tests failed" in feedback and "self.assertEqual(double(21), 42)" in feedback
    assert (await app.runs.judge(session_id, CALLER, TESTS)).result.passed


async def test_judge_with_a_driver_runs_the_tests_as_the_program(
    app: App, fake: FakeEngine
) -> None:
    session_id = await session(app, fake, "bash", "echo $(( $1 * 2 ))\n")
    report = await app.runs.judge(session_id, CALLER, DRIVER, code_file="candidate.sh")
    assert report.result.passed and report.result.stdout == "candidate printed: 42\n"
