"""The figures of an evaluation: pass rates with 95 % Wilson intervals, tables and JSON lines.

Which tasks count: a task with an error (the model could not be reached, the sandbox could not
run the judge) has no verdict and is left out of every rate; the rates are over the *judged*
tasks, and the errors are counted beside them.

The lift of repair: a task that passes single shot is never repaired (repair starts from a
failure), so "passed after repair" contains "passed single shot" and the lift is exactly the
share of judged tasks that repair rescued: a binomial proportion like the others, with a Wilson
interval of its own (not a difference of two intervals).

JSON lines (``--json``): one :meth:`~bot.eval.runner.TaskResult.to_json` object per task, in
the order the tasks ended, and a last line ``{"summary": {...}}`` (:func:`summary_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from bot.errors import UserError
from bot.eval.runner import TaskResult

__all__ = [
    "Proportion",
    "SuiteSummary",
    "read_results",
    "render",
    "summarize",
    "summary_json",
    "wilson",
    "write_line",
]

#: the two-sided 95 % quantile of the normal distribution
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (fractions, 0 to 1).

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0 % and 100 %,
    which small suites and strong models reach.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, not {successes}/{n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, where
    high = 1.0 if successes == n else min(1.0, centre + half)  # rounding would miss them
    return low, high


@dataclass(frozen=True, slots=True, kw_only=True)
class Proportion:
    """``passed`` of ``n`` with its 95 % Wilson interval."""

    passed: int
    n: int

    @property
    def rate(self) -> float:
        return self.passed / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.passed, self.n)

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "passed": self.passed,
            "n": self.n,
            "rate": round(self.rate, 4),
            "low": round(low, 4),
            "high": round(high, 4),
        }

    def percent(self) -> str:
        low, high = self.interval
        return (
            f"{100 * self.rate:.1f} % ({self.passed}/{self.n}; "
            f"95 % CI [{100 * low:.1f}, {100 * high:.1f}])"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteSummary:
    suite: str
    model: str
    repair: int  # fix rounds allowed
    tasks: int  # results summarised
    errors: int  # of which without a verdict
    single: Proportion | None  # None: nothing was judged
    #: passed after fix round k (cumulative, round 0 = single shot excluded), k = 1 .. repair
    by_round: tuple[Proportion, ...]
    repaired: Proportion | None  # None without repair rounds
    lift: Proportion | None  # tasks repair rescued, of the judged ones
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # task wall times, added up
    last_error: str | None

    @property
    def judged(self) -> int:
        return self.tasks - self.errors

    def to_json(self) -> dict[str, Any]:
        def maybe(p: Proportion | None) -> dict[str, Any] | None:
            return p.to_json() if p is not None else None

        lift = maybe(self.lift)
        if lift is not None and self.lift is not None:
            low, high = self.lift.interval
            lift.update(points=round(100 * self.lift.rate, 2), points_low=round(100 * low, 2),
                        points_high=round(100 * high, 2))  # fmt: skip
        return {
            "suite": self.suite,
            "model": self.model,
            "repair": self.repair,
            "tasks": self.tasks,
            "judged": self.judged,
            "errors": self.errors,
            "single": maybe(self.single),
            "by_round": [p.to_json() for p in self.by_round],
            "repaired": maybe(self.repaired),
            "lift": lift,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_task": round(self._per_task(self.prompt_tokens + self.completion_tokens)),
            "seconds_per_task": round(self._per_task(self.seconds), 3),
            "last_error": self.last_error,
        }

    def _per_task(self, total: float) -> float:
        return total / self.tasks if self.tasks else 0.0


def summarize(suite: str, model: str, repair: int, results: Iterable[TaskResult]) -> SuiteSummary:
    """The figures of one suite's ``results`` (see the module doc for what counts)."""
    rows = list(results)
    judged = [r for r in rows if r.error is None]
    errors = [r for r in rows if r.error is not None]
    n = len(judged)

    def share(count: int) -> Proportion | None:
        return Proportion(passed=count, n=n) if n else None

    def passed_by(k: int) -> int:
        return sum(1 for r in judged if r.passed_round is not None and r.passed_round <= k)

    single = share(passed_by(0))
    by_round = (
        tuple(Proportion(passed=passed_by(k), n=n) for k in range(1, repair + 1)) if n else ()
    )
    repaired = share(passed_by(repair)) if repair else None
    lift = share(passed_by(repair) - passed_by(0)) if repair else None
    return SuiteSummary(
        suite=suite,
        model=model,
        repair=repair,
        tasks=len(rows),
        errors=len(errors),
        single=single,
        by_round=by_round,
        repaired=repaired,
        lift=lift,
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        seconds=sum(r.seconds for r in rows),
        last_error=errors[-1].error if errors else None,
    )


def summary_json(summaries: Sequence[SuiteSummary], *, wall_seconds: float) -> dict[str, Any]:
    """The last JSON line: ``{"summary": {"model", "repair", "suites": {name: {...}}, ...}}``."""
    first = summaries[0] if summaries else None
    return {
        "summary": {
            "model": first.model if first else None,
            "repair": first.repair if first else None,
            "suites": {s.suite: s.to_json() for s in summaries},
            "wall_seconds": round(wall_seconds, 3),
        }
    }


def write_line(file: IO[str], data: dict[str, Any]) -> None:
    """One JSON line, flushed: an interrupted run keeps every task that ended."""
    file.write(json.dumps(data, ensure_ascii=False) + "\n")
    file.flush()


def read_results(path: Path) -> list[TaskResult]:
    """The task lines of an earlier ``--json`` file (its summary lines are skipped)."""
    results = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if "summary" in data:
                continue
            results.append(TaskResult.from_json(data))
        except (ValueError, TypeError, AttributeError):
            raise UserError(
                f"{path} line {number} is not a result of codethread eval; resume from the file "
                "a run wrote, or leave out --resume to start over."
            ) from None
    return results


def render(summary: SuiteSummary, console: Console) -> None:
    """The suite's table: pass rates, the lift, tokens and time."""
    table = Table(
        title=f"{summary.suite} · {summary.model}", title_justify="left", show_header=False
    )
    table.add_column("measure", style="bold")
    table.add_column("value")
    counted = f"{summary.tasks} ({summary.judged} judged"
    counted += f", {summary.errors} without a verdict)" if summary.errors else ")"
    table.add_row("tasks", counted)
    if summary.single is None:
        table.add_row("pass@1", "nothing judged")
    else:
        table.add_row("pass@1 single shot", summary.single.percent())
        for k, proportion in enumerate(summary.by_round, 1):
            table.add_row(f"  after fix round {k}", proportion.percent())
        if summary.repaired is not None and summary.lift is not None:
            table.add_row(f"pass@1 after repair (≤ {summary.repair})", summary.repaired.percent())
            low, high = summary.lift.interval
            table.add_row(
                "lift of repair",
                f"+{100 * summary.lift.rate:.1f} points ({summary.lift.passed} rescued; "
                f"95 % CI [{100 * low:.1f}, {100 * high:.1f}])",
            )
    tokens = summary.prompt_tokens + summary.completion_tokens
    per_task = tokens / summary.tasks if summary.tasks else 0
    table.add_row(
        "tokens per task",
        f"{per_task:,.0f} ({summary.prompt_tokens:,} prompt + "
        f"{summary.completion_tokens:,} completion in all)",
    )
    seconds = summary.seconds / summary.tasks if summary.tasks else 0
    table.add_row("wall time per task", f"{seconds:.2f} s")
    if summary.last_error:
        table.add_row("last error", summary.last_error)
    console.print(table)
