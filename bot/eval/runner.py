"""Running tasks through the real core: a session per task, judged in the sandbox, repaired by Fix.

Each task takes the path a chat user's request takes, so the figures describe the bot, not a
bare model call: :meth:`SessionService.check` and :meth:`SessionService.open` make version 1
from the task's prompt (the language's system prompt, extraction, a stored version), each
adjust message is a further :meth:`SessionService.turn`, and :meth:`RunService.judge` runs the
suite's own tests against the latest version and stores the result as a test run. With
``repair`` rounds, a failing version goes through :meth:`RunService.fix`, which builds the next
version from that stored failure exactly as the Fix button does, and is judged again, stopping
at the first pass (as ``/repair`` does).

Everything lives in a throwaway SQLite database in a temporary folder (:func:`eval_app`),
never the user's. A turn that ends in :class:`~bot.values.Failed` (the model could not be
reached, timed out, refused the request) makes the task an *error*, not a failure: errors are
left out of every pass rate, and ``--resume`` runs those tasks again. After
``stop_after_errors`` errors in a row the run stops early rather than spend hours on a server
that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.app import App, build
from bot.config import Config
from bot.errors import UserError
from bot.eval.suites import Task
from bot.values import Caller, Done, Failed, NonCode, Reply, RunReport
from engines import Engine, ModelSpec, create_engine
from storage import SessionKey

__all__ = ["EVAL_CALLER", "ErrorKind", "Evaluator", "TaskResult", "eval_app", "evaluate"]

#: who asks: a trusted caller (any model reference) on a platform of its own
EVAL_CALLER = Caller(platform="eval", workspace="eval", user="eval", channel="eval", trusted=True)

#: why a task has no verdict: the model did not answer, or the sandbox could not run the judge
ErrorKind = Literal["model", "sandbox"]

_threads = itertools.count(1)
#: the default ``max_prompt_chars``: every task's prompt fits it
_PROMPT_CHARS = 8000


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """What became of one task; one JSON line of ``--json`` (:meth:`to_json`)."""

    suite: str
    task: str
    language: str
    model: str
    repair: int  # the fix rounds this run allowed
    single: bool | None  # passed single shot; None: no verdict (the first answer failed)
    repaired: bool | None  # passed after repair; None without repair rounds, or on error
    rounds: int  # fix rounds run
    passed_round: int | None  # 0: single shot, k: after k fix rounds, None: never passed
    status: str  # the last judge's status (ok, failed, compile_error, limit), non_code, error
    error: str | None = None  # why the task has no verdict (ErrorKind says whose fault)
    error_kind: ErrorKind | None = None
    versions: int = 0
    prompt_tokens: int = 0  # of the stored versions, as the engine reported them
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time of the task, judge runs included

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskResult:
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@contextlib.asynccontextmanager
async def eval_app(
    config: Config,
    *,
    model: str,
    engine_factory: Callable[[ModelSpec], Engine] = create_engine,
) -> AsyncIterator[App]:
    """The real app on a throwaway database, with ``model`` as its default model.

    The user's catalog (``[models.*]``) and timeouts stay; what would refuse or slow an
    evaluation goes: the rate limit, the allow-lists, ``run_snippets = false``, and a
    ``max_prompt_chars`` below the default (the suites' prompts are written to fit it).
    """
    with tempfile.TemporaryDirectory(prefix="codethread-eval-") as folder:
        config = dataclasses.replace(
            config,
            db_path=Path(folder) / "eval.db",
            model=model,
            rate_limit_per_minute=0,
            max_prompt_chars=max(config.max_prompt_chars, _PROMPT_CHARS),
            allowed_users=frozenset(),
            allowed_channels=frozenset(),
            run_snippets=True,
        )
        app = await build(config, engine_factory=engine_factory, adapters=False)
        try:
            yield app
        finally:
            await app.aclose()


class Evaluator:
    """Runs tasks one at a time each (many at once overall) against one model of ``app``."""

    def __init__(
        self, app: App, *, model: str, name: str, repair: int, caller: Caller = EVAL_CALLER
    ) -> None:
        self.app = app
        self.model = model  # the reference sessions are opened with
        self.name = name  # what results call the model
        self.repair = repair
        self.caller = caller

    async def run_task(self, task: Task) -> TaskResult:
        began = time.perf_counter()
        outcome = await self._converse(task)
        session_id = outcome.session.id
        if isinstance(outcome, Failed):
            return await self._result(
                task, session_id, began, single=None, status="error", error=outcome.message,
                error_kind="model",
            )  # fmt: skip
        if outcome.session.version_count == 0:  # a non-code answer to the first message
            return await self._result(
                task, session_id, began, single=False, status="non_code", passed_round=None
            )
        report = await self._judge(task, session_id)
        if not _judged(report):
            return await self._sandbox_error(task, session_id, began, report, single=None)
        single = report.result.passed
        passed_round = 0 if single else None
        rounds = 0
        while passed_round is None and rounds < self.repair and report.result.fixable:
            rounds += 1
            fixed = await _final(self.app.runs.fix(session_id, self.caller))
            if isinstance(fixed, Failed):
                return await self._result(
                    task, session_id, began, single=single, rounds=rounds, status="error",
                    error=fixed.message, error_kind="model",
                )  # fmt: skip
            if not isinstance(fixed, Done):
                break  # an answer without code: nothing new to judge (as /repair stops)
            report = await self._judge(task, session_id)
            if not _judged(report):
                return await self._sandbox_error(
                    task, session_id, began, report, single=single, rounds=rounds
                )
            if report.result.passed:
                passed_round = rounds
        return await self._result(
            task, session_id, began, single=single, rounds=rounds, passed_round=passed_round,
            status=report.result.status,
        )  # fmt: skip

    async def _converse(self, task: Task) -> Done | NonCode | Failed:
        """The session's turns: the prompt, then each adjust message while versions come."""
        service = self.app.service
        key = SessionKey(
            platform=self.caller.platform,
            workspace=self.caller.workspace,
            channel=task.suite,
            thread=f"{task.id}#{next(_threads)}",
        )
        checked = service.check(
            self.caller, prompt=task.prompt, language=task.language, model=self.model
        )
        outcome = await _final(service.open(self.caller, key, checked))
        for text in task.adjust:
            if not isinstance(outcome, Done):
                break
            later = await _final(service.turn(outcome.session, self.caller, text))
            if isinstance(later, NonCode):
                break  # the latest version stands, as it would for a chat user
            outcome = later
        return outcome

    async def _judge(self, task: Task, session_id: int) -> RunReport:
        return await self.app.runs.judge(
            session_id, self.caller, task.tests, code_file=task.code_file
        )

    async def _sandbox_error(
        self,
        task: Task,
        session_id: int,
        began: float,
        report: RunReport,
        *,
        single: bool | None,
        rounds: int = 0,
    ) -> TaskResult:
        message = report.result.message or "the sandbox could not run the tests"
        return await self._result(
            task, session_id, began, single=single, rounds=rounds, status="error",
            error=f"sandbox: {message}", error_kind="sandbox",
        )  # fmt: skip

    async def _result(
        self,
        task: Task,
        session_id: int,
        began: float,
        *,
        single: bool | None,
        status: str,
        rounds: int = 0,
        passed_round: int | None = None,
        error: str | None = None,
        error_kind: ErrorKind | None = None,
    ) -> TaskResult:
        versions = await self.app.store.list_versions(session_id)
        repaired = passed_round is not None if self.repair and error is None else None
        return TaskResult(
            suite=task.suite,
            task=task.id,
            language=task.language,
            model=self.name,
            repair=self.repair,
            single=single,
            repaired=repaired,
            rounds=rounds,
            passed_round=passed_round,
            status=status,
            error=error,
            error_kind=error_kind,
            versions=len(versions),
            prompt_tokens=sum(v.prompt_tokens or 0 for v in versions),
            completion_tokens=sum(v.completion_tokens or 0 for v in versions),
            seconds=time.perf_counter() - began,
        )


def _judged(report: RunReport) -> bool:
    """Whether the judge ran (any verdict), as opposed to a sandbox that could not start."""
    return report.result.status != "unavailable"


async def _final(events: AsyncGenerator[Reply]) -> Done | NonCode | Failed:
    """Consume a turn's events to its end: the one Done, NonCode or Failed."""
    final: Done | NonCode | Failed | None = None
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, Done | NonCode | Failed):
                final = event
    if final is None:
        raise RuntimeError("a turn ended without a result")
    return final


async def evaluate(
    evaluator: Evaluator,
    tasks: Iterable[Task],
    *,
    jobs: int = 1,
    stop_after_errors: int = 5,
    on_result: Callable[[TaskResult], None] | None = None,
) -> str | None:
    """Run ``tasks``, ``jobs`` at a time, calling ``on_result`` as each one ends.

    Returns None when every task ran, else why the run stopped early: ``stop_after_errors``
    tasks in a row whose model could not be reached (the last error says why), or a refusal
    (the sandbox stopped working).
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    line = iter(tasks)
    errors_in_a_row = 0
    stopped: str | None = None

    async def worker() -> None:
        nonlocal errors_in_a_row, stopped
        for task in line:  # shared: each task goes to the first free worker
            if stopped is not None:
                return
            try:
                result = await evaluator.run_task(task)
            except UserError as err:  # refused: the sandbox went away, the model is unknown
                stopped = f"stopped: {err}"
                return
            errors_in_a_row = errors_in_a_row + 1 if result.error_kind == "model" else 0
            if on_result is not None:
                on_result(result)
            if stop_after_errors and errors_in_a_row >= stop_after_errors and stopped is None:
                stopped = (
                    f"stopped after {errors_in_a_row} tasks in a row could not reach the model "
                    f"(the last: {result.error})"
                )

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(jobs):
                group.create_task(worker())
    except ExceptionGroup as group:  # the first failure, as if one worker had run it all
        raise group.exceptions[0] from None
    return stopped
