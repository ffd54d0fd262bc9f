"""Running versions in the sandbox, testing them, and repairing them from their failures.

* **Run** executes a version as a program (the latest by default) and stores the result.
* **Test** asks the session's model for unit tests of the current version (Python's
  ``unittest``, Node's ``node:test``), runs code and tests together, and stores the result with
  the tests.
* **Fix** turns the current version's latest failed run into feedback, so the next version is
  made from what went wrong; **repair** repeats test → fix up to ``repair_attempts`` times and
  stops at the first pass.

Anyone in a session's thread may press Run or Test (the rate limit applies per user); through
``/snippets run ID`` only the owner may (``scoped=True``). Runs queue in a bounded pool, and a
waiting caller learns its place through ``on_queued``. Without a working sandbox (bubblewrap
missing, namespaces refused) running is disabled with the reason; code never runs unsandboxed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable

from bot.codeblocks import extract_code
from bot.core import SessionService
from bot.errors import SessionNotFound, UserError
from bot.prompts import TESTABLE, failure_feedback, tests_messages
from bot.values import Caller, Done, Reply, RunReport
from engines import EngineError
from sandbox import FIXABLE, RunResult, SandboxPool
from storage import RunKind, Session, Version, VersionNotFound

__all__ = ["RunService"]

log = logging.getLogger(__name__)

OnQueued = Callable[[int], None]


class RunService:
    def __init__(
        self, *, sessions: SessionService, pool: SandboxPool | None, repair_attempts: int = 2
    ) -> None:
        self.sessions = sessions
        self.pool = pool
        self.repair_attempts = repair_attempts
        self._disabled: str | None = None if pool else "Running snippets is turned off here."

    async def prepare(self) -> None:
        """Probe the sandbox once (at start-up); a failure disables running, with the reason."""
        if self.pool is not None:
            self._disabled = await self.pool.sandbox.check()
            if self._disabled:
                log.warning("%s", self._disabled)

    @property
    def can_run(self) -> bool:
        """Whether Run and Test work here; adapters hide the buttons otherwise."""
        return self.pool is not None and self._disabled is None and self.pool.sandbox.available()

    async def run(
        self,
        session_id: int,
        caller: Caller,
        *,
        number: int | None = None,
        scoped: bool = False,
        on_queued: OnQueued | None = None,
    ) -> RunReport:
        """Run a version (the latest by default) and store the result."""
        session, version, pool = await self._target(session_id, caller, number, scoped)
        result = await pool.run(session.language, version.code, on_queued=on_queued)
        await self._store(version, result, kind="run")
        return RunReport(session=session, version=version, result=result)

    async def test(
        self,
        session_id: int,
        caller: Caller,
        *,
        scoped: bool = False,
        on_queued: OnQueued | None = None,
    ) -> RunReport:
        """Ask the model for unit tests of the current version, run them, store the result."""
        session, version, pool = await self._target(session_id, caller, None, scoped)
        language = self.sessions.language(session.language)
        if language.name not in TESTABLE:
            names = " and ".join(sorted(self.sessions.language(n).label for n in TESTABLE))
            raise UserError(
                f"Tests can be written for {names} snippets; use Run for {language.label}."
            )
        try:
            answer = await self.sessions.complete(session, tests_messages(language, version.code))
        except EngineError as err:
            raise UserError(f"Could not get tests from the model: {err}") from None
        extraction = extract_code(answer)
        if extraction is None:
            raise UserError("The model answered without a test file; try Test again.")
        result = await pool.run_tests(
            language.name, version.code, extraction.code, on_queued=on_queued
        )
        await self._store(version, result, kind="test", tests=extraction.code)
        return RunReport(
            session=session, version=version, result=result, kind="test", tests=extraction.code
        )

    async def fix(self, session_id: int, caller: Caller) -> AsyncGenerator[Reply]:
        """The next version, made from the current version's latest failed run or test."""
        session, version = await self.sessions.show(session_id)
        if version is None:
            raise UserError(f"Session {session_id} has no version to fix yet.")
        run = await self.sessions.store.latest_run(version.id)
        if run is None:
            raise UserError("Run or test this version first; then Fix uses what went wrong.")
        if run.status == "ok":
            raise UserError("The latest run of this version passed; there is nothing to fix.")
        if run.status not in FIXABLE:
            raise UserError("The latest run could not start at all, so there is nothing to fix.")
        turn = self.sessions.turn(
            session.id,
            caller,
            failure_feedback(run, budget=self.sessions.settings.max_prompt_chars),
            base=version.number,
        )
        async with contextlib.aclosing(turn) as events:
            async for event in events:
                yield event

    async def repair(
        self, session_id: int, caller: Caller, *, on_queued: OnQueued | None = None
    ) -> AsyncGenerator[Reply | RunReport]:
        """Test, and while the tests fail, fix and test again (at most ``repair_attempts``)."""
        report = await self.test(session_id, caller, on_queued=on_queued)
        yield report
        for _ in range(self.repair_attempts):
            if not report.result.fixable:
                return
            made = False
            async with contextlib.aclosing(self.fix(session_id, caller)) as events:
                async for event in events:
                    made = made or isinstance(event, Done)
                    yield event
            if not made:
                return
            report = await self.test(session_id, caller, on_queued=on_queued)
            yield report

    # -- helpers ---------------------------------------------------------------------------

    async def _target(
        self, session_id: int, caller: Caller, number: int | None, scoped: bool
    ) -> tuple[Session, Version, SandboxPool]:
        session, version = await self.sessions.show(
            session_id, number=number, caller=caller if scoped else None
        )
        if not self.sessions.visible(caller, session):
            raise SessionNotFound(session_id)
        if self.pool is None or not self.can_run:
            reason = self._disabled or "The sandbox has not been checked yet."
            raise UserError(reason)
        if version is None:
            raise UserError(f"Session {session_id} has no version to run yet.")
        self.sessions.check_rate(caller)
        return session, version, self.pool

    async def _store(
        self, version: Version, result: RunResult, *, kind: RunKind, tests: str = ""
    ) -> None:
        try:
            await self.sessions.store.add_run(
                version.id,
                kind=kind,
                status=result.status,
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
                duration_ms=result.duration_ms,
                peak_memory_kb=result.peak_memory_kb,
                limit_hit=result.limit_hit,
                compile_output=result.compile_output,
                tests=tests,
            )
        except VersionNotFound:
            raise UserError("The session was deleted while its code ran.") from None
