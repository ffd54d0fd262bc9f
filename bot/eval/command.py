"""``codethread eval``: choose the tasks, run them with a progress bar, print and write the figures.

The command line (``bot/cli.py``) only parses options and calls :func:`run_eval`, which returns
the exit status: 0 when every task got a verdict (and, with ``--reference``, passed), 1 when
some task has none (the model or the sandbox failed; ``--resume`` runs those again) or a
reference solution failed, which means the sandbox or the judge produces false failures.

``--json PATH`` starts the file afresh, or with ``--resume`` keeps its results with a verdict
(they must come from the same model and ``--repair``), drops the rest and runs the tasks that
are missing; either way each task's line is appended as it ends, and the summary last.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bot.config import Config
from bot.errors import UserError
from bot.eval.reference import REFERENCE_MODEL, REFERENCE_REF, reference_factory
from bot.eval.report import read_results, render, summarize, summary_json, write_line
from bot.eval.runner import Evaluator, TaskResult, eval_app, evaluate
from bot.eval.suites import SUITES, Suite, Task, load_suite
from engines import Engine, ModelSpec, create_engine

__all__ = ["EvalOptions", "run_eval"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalOptions:
    """The command's options, as ``codethread eval --help`` describes them."""

    suites: tuple[str, ...] = SUITES
    model: str | None = None
    repair: int = 0
    limit: int | None = None  # the first K tasks of each suite
    jobs: int = 1
    json_path: Path | None = None
    resume: bool = False
    reference: bool = False
    #: end the run after this many tasks in a row could not reach the model (0: never)
    stop_after_errors: int = 5

    def check(self) -> None:
        if self.reference and self.model:
            raise UserError("--reference runs the suites' own solutions: leave out --model.")
        if self.resume and self.json_path is None:
            raise UserError("--resume continues from a --json file: name it with --json PATH.")
        if self.repair < 0 or self.jobs < 1 or (self.limit is not None and self.limit < 1):
            raise UserError("--repair must be 0 or more, --jobs and --limit 1 or more.")


async def run_eval(
    options: EvalOptions,
    config: Config,
    *,
    out: Console,
    err: Console,
    engine_factory: Callable[[ModelSpec], Engine] = create_engine,
) -> int:
    """Run the evaluation ``options`` describe; the tables go to ``out``, progress to ``err``."""
    options.check()
    suites = [load_suite(name) for name in dict.fromkeys(options.suites)]
    chosen = {s.name: s.tasks[: options.limit] for s in suites}
    factory = engine_factory
    if options.reference:
        factory = reference_factory([t for tasks in chosen.values() for t in tasks], engine_factory)
    model = REFERENCE_REF if options.reference else (options.model or config.model)
    began = time.perf_counter()
    async with eval_app(config, model=model, engine_factory=factory) as app:
        spec = app.service.model(model)
        name = REFERENCE_MODEL if options.reference else spec.name
        await app.runs.prepare()
        if not app.runs.can_run:
            pool = app.runs.pool
            reason = await pool.sandbox.check() if pool is not None else "running is off"
            raise UserError(
                f"The sandbox cannot run the tests here: {reason} (codethread doctor says more)."
            )
        app.engines.get(spec)
        readiness = await app.engines.wait_ready(spec)
        if readiness.state == "failed":
            raise UserError(f"The model {name} cannot answer: {readiness.detail}")
        kept = _kept_results(options, name)
        done = {(r.suite, r.task) for r in kept}
        todo = [t for tasks in chosen.values() for t in tasks if (t.suite, t.id) not in done]
        evaluator = Evaluator(app, model=model, name=name, repair=options.repair)
        counted = [r for r in kept if r.suite in chosen and r.task in _ids(chosen[r.suite])]
        with _results_file(options, kept) as file, _Progress(err, suites, chosen, counted) as bar:
            results = list(kept)

            def record(result: TaskResult) -> None:
                results.append(result)
                bar.advance(result)
                if file is not None:
                    write_line(file, result.to_json())

            stopped = await evaluate(
                evaluator,
                todo,
                jobs=options.jobs,
                stop_after_errors=options.stop_after_errors,
                on_result=record,
            )
            summaries = [
                summarize(
                    s.name,
                    name,
                    options.repair,
                    [r for r in results if r.suite == s.name and r.task in _ids(chosen[s.name])],
                )
                for s in suites
            ]
            if file is not None:
                write_line(file, summary_json(summaries, wall_seconds=time.perf_counter() - began))
    for summary in summaries:
        render(summary, out)
    if stopped:
        err.print(
            f"The run {stopped}" + ("; --resume continues it." if options.json_path else "."),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    missing = sum(len(chosen[s.suite]) - s.judged for s in summaries)
    if missing:
        err.print(
            f"{missing} task(s) have no verdict yet"
            + ("; run again with --resume to finish them." if options.json_path else "."),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    if options.reference:
        failed = [r for r in results if r.passed_round is None]
        if failed:
            names = ", ".join(f"{r.suite}:{r.task}" for r in failed[:10])
            err.print(
                f"{len(failed)} reference solution(s) failed their own tests: {names}. The "
                "sandbox or the judge gives false failures here.",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return 1
    return 0


def _ids(tasks: Sequence[Task]) -> set[str]:
    return {t.id for t in tasks}


def _kept_results(options: EvalOptions, model: str) -> list[TaskResult]:
    """With --resume: the earlier results with a verdict, from the same model and --repair."""
    path = options.json_path
    if not options.resume or path is None or not path.exists():
        return []
    earlier = read_results(path)
    for result in earlier:
        if (result.model, result.repair) != (model, options.repair):
            raise UserError(
                f"{path} holds results of model {result.model} with --repair {result.repair}; "
                "resume with the same --model and --repair, or write to another --json file."
            )
    return [r for r in earlier if r.error is None]


@contextlib.contextmanager
def _results_file(options: EvalOptions, kept: Sequence[TaskResult]) -> Iterator[IO[str] | None]:
    """The --json file, rewritten with the kept results (nothing without --json)."""
    if options.json_path is None:
        yield None
        return
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    with options.json_path.open("w", encoding="utf-8") as file:
        for result in kept:
            write_line(file, result.to_json())
        yield file


class _Progress:
    """A bar per suite on a terminal; elsewhere (a log, a pipe) one line per finished task."""

    def __init__(
        self,
        console: Console,
        suites: Sequence[Suite],
        chosen: Mapping[str, Sequence[Task]],
        kept: Sequence[TaskResult],
    ) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[score]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )
        self._bars: dict[str, TaskID] = {}
        self._counts: dict[str, list[int]] = {}  # suite: [done, single, repaired, errors]
        self._totals = {s.name: len(chosen[s.name]) for s in suites}
        for suite in suites:
            self._counts[suite.name] = [0, 0, 0, 0]
            self._bars[suite.name] = self._progress.add_task(
                suite.name, total=self._totals[suite.name], score=""
            )
        for result in kept:
            self._count(result)

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def advance(self, result: TaskResult) -> None:
        self._count(result)
        if not self.live:
            done = self._counts[result.suite][0]
            self.console.print(
                f"[{done}/{self._totals[result.suite]}] {result.suite} {result.task}: "
                f"{_verdict(result)} ({result.seconds:.1f} s)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def _count(self, result: TaskResult) -> None:
        counts = self._counts[result.suite]
        counts[0] += 1
        counts[1] += bool(result.single) and result.error is None
        counts[2] += result.passed_round is not None and result.error is None
        counts[3] += result.error is not None
        score = (
            f"single {counts[1]} · repaired {counts[2]}" if result.repair else f"pass {counts[1]}"
        )
        if counts[3]:
            score += f" · errors {counts[3]}"
        self._progress.update(self._bars[result.suite], completed=counts[0], score=score)


def _verdict(result: TaskResult) -> str:
    if result.error is not None:
        return f"no verdict: {result.error}"
    if result.single:
        return "passed"
    if result.passed_round is not None:
        plural = "s" if result.passed_round > 1 else ""
        return f"failed, passed after {result.passed_round} fix round{plural}"
    return f"failed ({result.status})"
