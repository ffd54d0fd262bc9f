"""Running versions in the sandbox, testing them, and repairing them from their failures.

* **Run** executes a version as a program (the latest by default) and stores the result.
* **Test** asks the session's model for unit tests of the latest version (Python's
  ``unittest``, Node's ``node:test``), runs code and tests together, and stores the result with
  the tests.
* **Fix** turns a version's latest failed run into feedback, so the next version is made from
  what went wrong; **repair** repeats test → fix up to ``repair_attempts`` times and stops at
  the first pass.

The rules every surface shares live here: Test and Fix act on the latest version only (a
button under an older version is refused, naming the latest); one Test and one Fix per session
at a time (a second press while one runs is refused); Fix is offered, and accepted, only for a
failure of the code itself (:attr:`sandbox.RunResult.fixable`), not for a run that could not
start. :meth:`RunService.version_actions` and the ``actions`` of a :class:`RunReport` say which
buttons a result offers.

Anyone in a session's thread may press Run or Test (the rate limit applies per user); through
``/snippets run ID`` only the owner may (``scoped=True``). Runs queue in a bounded pool, and a
waiting caller learns its place through ``on_queued``. Without a working sandbox (bubblewrap
missing, namespaces refused) running is disabled with the reason; code never runs unsandboxed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence

from bot.codeblocks import extract_code
from bot.core import SessionService
from bot.errors import Busy, NothingToDo, RunsDisabled, StaleVersion, UserError
from bot.prompts import TESTABLE, failure_feedback, tests_messages
from bot.values import Action, Caller, Done, Reply, RunReport
from engines import EngineError
from sandbox import FIXABLE, RunResult, SandboxPool
from storage import RunKind, Session, Version, VersionNotFound

__all__ = ["OnQueued", "RunService"]

log = logging.getLogger(__name__)

OnQueued = Callable[[int], None]


class RunService:
    def __init__(
        self,
        *,
        sessions: SessionService,
        pool: SandboxPool | None,
        repair_attempts: int = 2,
        history: bool = False,
    ) -> None:
        """``history``: the web page is reachable (a public URL is set), so every version
        offers View history."""
        self.sessions = sessions
        self.pool = pool
        self.repair_attempts = repair_attempts
        self.history = history
        self._disabled: str | None = None if pool else "Running snippets is turned off here."
        self._busy: set[tuple[str, int]] = set()  # (test or fix, session id) in progress

    async def prepare(self) -> None:
        """Probe the sandbox once (at start-up); a failure disables running, with the reason."""
        if self.pool is not None:
            self._disabled = await self.pool.check()
            if self._disabled:
                log.warning("%s", self._disabled)

    # -- what a version offers -----------------------------------------------------------------

    @property
    def disabled(self) -> str | None:
        """Why running is off here (None: it is on, or not checked yet)."""
        return self._disabled

    @property
    def can_run(self) -> bool:
        """Whether Run and Test work here; surfaces show no such buttons otherwise."""
        return self.pool is not None and self._disabled is None and self.pool.available()

    def can_test(self, language: str) -> bool:
        """Whether the model can be asked for unit tests of a ``language`` snippet here."""
        return self.can_run and language in TESTABLE

    def version_actions(self, session: Session, version: Version) -> tuple[Action, ...]:
        """The buttons under a version. The latest: Run, Run with input… and Test where they
        work, Diff (from the one before), Download, Delete session. An older one (shown
        again): Run, Run with input…, Revert to it, Download. Both end with View history
        where the web page is reachable."""
        ref = {"session_id": session.id, "number": version.number}
        actions = []
        if self.can_run:
            actions.append(Action(kind="run", **ref))
            actions.append(Action(kind="input", **ref))
        if version.number < session.version_count:
            actions.append(Action(kind="revert", **ref))
            actions.append(Action(kind="download", **ref))
            return self._with_history(actions, ref)
        if self.can_test(session.language):
            actions.append(Action(kind="test", **ref))
        if version.number > 1:
            actions.append(Action(kind="diff", **ref))
        actions.append(Action(kind="download", **ref))
        actions.append(Action(kind="delete", session_id=session.id))
        return self._with_history(actions, ref)

    def _with_history(self, actions: list[Action], ref: dict[str, int]) -> tuple[Action, ...]:
        if self.history:
            actions.append(Action(kind="history", **ref))
        return tuple(actions)

    # -- run, test, fix, repair ----------------------------------------------------------------

    async def run(
        self,
        session_id: int,
        caller: Caller,
        *,
        number: int | None = None,
        scoped: bool = False,
        stdin: str = "",
        args: Sequence[str] = (),
        on_queued: OnQueued | None = None,
    ) -> RunReport:
        """Run a version (the latest by default) with ``stdin``, command-line ``args`` and the
        session's files beside it; store the result with them and the files it made."""
        session, version, pool = await self._target(session_id, caller, number, scoped)
        stored = await self.sessions.store.list_files(session.id)
        attached = {item.name: item.data for item in stored}
        try:
            result = await pool.run(
                session.language,
                version.code,
                stdin=stdin,
                args=args,
                files=attached,
                on_queued=on_queued,
            )
        except ValueError as err:  # input over the sandbox's limits
            raise UserError(str(err)) from None
        run_id = await self._store(version, result, kind="run", stdin=stdin, args=args)
        return self._report(session, version, result, stdin=stdin, args=tuple(args), run_id=run_id)

    async def test(
        self,
        session_id: int,
        caller: Caller,
        *,
        number: int | None = None,
        scoped: bool = False,
        on_queued: OnQueued | None = None,
    ) -> RunReport:
        """Ask the model for unit tests of the latest version, run them, store the result.

        ``number`` is the version the caller saw (a button's); an older one is refused.
        """
        session, version, pool = await self._target(session_id, caller, None, scoped)
        self.check_test(session, number)
        self._latest("Test", session, version, number)
        language = self.sessions.language(session.language)
        with self._once(
            "test", session.id, "Unit tests for this snippet are already on their way."
        ):
            try:
                answer = await self.sessions.complete(
                    session, tests_messages(language, version.code)
                )
            except EngineError as err:
                raise UserError(f"Could not get tests from the model: {err}") from None
            extraction = extract_code(answer)
            if extraction is None:
                raise UserError("The model answered without a test file; try Test again.")
            result = await pool.run_tests(
                language.name, version.code, extraction.code, on_queued=on_queued
            )
        run_id = await self._store(version, result, kind="test", tests=extraction.code)
        return self._report(
            session, version, result, kind="test", tests=extraction.code, run_id=run_id
        )

    async def judge(
        self,
        session_id: int,
        caller: Caller,
        tests: str,
        *,
        code_file: str | None = None,
        on_queued: OnQueued | None = None,
    ) -> RunReport:
        """Run given ``tests`` (not the model's) against the latest version; store the result.

        For ``codethread eval``: the result is stored as a ``"test"`` run, exactly like
        :meth:`test`'s, so that :meth:`fix` builds on it and the model sees what a chat user's
        Fix would show it (the failure and the tests). ``code_file`` None runs ``tests`` with
        the language's unit-test runner beside the snippet (Python, JavaScript); a file name
        runs ``tests`` itself as the program, in the session's language, with the version's
        code beside it under that name (Bash, C: a driver that calls the code and compares).
        """
        session, version, pool = await self._target(session_id, caller, None, False)
        if code_file is None:
            result = await pool.run_tests(
                session.language, version.code, tests, on_queued=on_queued
            )
        else:
            result = await pool.run(
                session.language, tests, files={code_file: version.code}, on_queued=on_queued
            )
        run_id = await self._store(version, result, kind="test", tests=tests)
        return self._report(session, version, result, kind="test", tests=tests, run_id=run_id)

    def check_test(self, session: Session, number: int | None) -> None:
        """What :meth:`test` refuses that the session alone tells (a surface asks first, so
        that a refusal posts nothing): no sandbox, a language without tests, an old version."""
        if not self.can_run:
            raise RunsDisabled(self._disabled or "The sandbox has not been checked yet.")
        language = self.sessions.language(session.language)
        if language.name not in TESTABLE:
            names = " and ".join(sorted(self.sessions.language(n).label for n in TESTABLE))
            raise UserError(
                f"Tests can be written for {names} snippets; use Run for {language.label}."
            )
        if number is not None and number != session.version_count:
            raise StaleVersion("Test", session.id, number, session.version_count)

    async def fix(
        self, session_id: int, caller: Caller, *, number: int | None = None
    ) -> AsyncGenerator[Reply]:
        """The next version, made from the latest failed run or test of the latest version.

        ``number`` is the version whose failure the caller saw (a button's); when it is no
        longer the latest, the fix is refused rather than applied to code it did not see.
        """
        session = await self.sessions.get(session_id, caller)
        version = await self.sessions.version(session)
        if version is None:
            raise NothingToDo(f"Session {session_id} has no version to fix yet.")
        self._latest("Fix", session, version, number)
        run = await self.sessions.store.latest_run(version.id)
        if run is None:
            raise NothingToDo("Run or test this version first; then Fix uses what went wrong.")
        if run.status == "ok":
            raise NothingToDo("The latest run of this version passed; there is nothing to fix.")
        if run.status not in FIXABLE:
            raise NothingToDo("The latest run could not start at all, so there is nothing to fix.")
        with self._once("fix", session.id, "A fix of this snippet is already being written."):
            feedback = failure_feedback(run, budget=self.sessions.max_prompt_chars)
            turn = self.sessions.turn(session, caller, feedback, base=version.number)
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

    @staticmethod
    def _report(
        session: Session,
        version: Version,
        result: RunResult,
        *,
        kind: RunKind = "run",
        tests: str = "",
        stdin: str = "",
        args: tuple[str, ...] = (),
        run_id: int | None = None,
    ) -> RunReport:
        """The stored run as a result, with Fix offered when the code itself failed."""
        actions = (
            (Action(kind="fix", session_id=session.id, number=version.number),)
            if result.fixable
            else ()
        )
        return RunReport(
            session=session, version=version, result=result, kind=kind, tests=tests,
            actions=actions, stdin=stdin, args=args, run_id=run_id,
        )  # fmt: skip

    @staticmethod
    def _latest(what: str, session: Session, latest: Version, number: int | None) -> None:
        if number is not None and number != latest.number:
            raise StaleVersion(what, session.id, number, latest.number)

    @contextlib.contextmanager
    def _once(self, kind: str, session_id: int, busy: str) -> Iterator[None]:
        """One Test (or Fix) of a session at a time: a second press while one runs is refused."""
        if (kind, session_id) in self._busy:
            raise Busy(busy)
        self._busy.add((kind, session_id))
        try:
            yield
        finally:
            self._busy.discard((kind, session_id))

    async def _target(
        self, session_id: int, caller: Caller, number: int | None, scoped: bool
    ) -> tuple[Session, Version, SandboxPool]:
        session = await (
            self.sessions.owned(session_id, caller)
            if scoped
            else self.sessions.get(session_id, caller)
        )
        if self.pool is None or not self.can_run:
            raise RunsDisabled(self._disabled or "The sandbox has not been checked yet.")
        version = await self.sessions.version(session, number)
        if version is None:
            raise NothingToDo(f"Session {session_id} has no version to run yet.")
        await self.sessions.check_rate(caller)
        return session, version, self.pool

    async def _store(
        self,
        version: Version,
        result: RunResult,
        *,
        kind: RunKind,
        tests: str = "",
        stdin: str = "",
        args: Sequence[str] = (),
    ) -> int:
        """Store the run with the files it made; its id."""
        try:
            stored = await self.sessions.store.add_run(
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
                stdin=stdin,
                args=args,
                artifacts=[(item.name, item.data) for item in result.artifacts],
            )
        except VersionNotFound:
            raise UserError("The session was deleted while its code ran.") from None
        return stored.id
