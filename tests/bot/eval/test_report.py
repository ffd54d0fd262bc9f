"""The figures: Wilson intervals, what counts in a summary, the JSON lines and the table."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from bot.errors import UserError
from bot.eval.report import (
    Proportion,
    read_results,
    render,
    summarize,
    summary_json,
    wilson,
    write_line,
)
from bot.eval.runner import TaskResult


def result(task: str, passed_round: int | None, *, repair: int = 2, **extra: object) -> TaskResult:
    fields: dict[str, object] = {
        "suite": "codethread",
        "task": task,
        "language": "python",
        "model": "m",
        "repair": repair,
        "single": passed_round == 0,
        "repaired": (passed_round is not None) if repair else None,
        "rounds": 0 if passed_round == 0 else (passed_round or repair),
        "passed_round": passed_round,
        "status": "ok" if passed_round is not None else "failed",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "seconds": 1.5,
    }
    fields.update(extra)
    return TaskResult(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # upper bound z²/(n + z²)
        (10, 10, 0.72247, 1.0),  # lower bound n/(n + z²)
        (5, 10, 0.23659, 0.76341),
        (81, 263, 0.25529, 0.36621),  # worked by hand
        (1, 1, 0.20654, 1.0),
    ],
)
def test_wilson_matches_known_values(successes: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson(successes, n)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)


def test_wilson_is_symmetric_and_contains_the_rate() -> None:
    for n in (1, 7, 30, 164):
        for k in range(n + 1):
            low, high = wilson(k, n)
            mirror_low, mirror_high = wilson(n - k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            assert low == pytest.approx(1 - mirror_high) and high == pytest.approx(1 - mirror_low)


def test_wilson_equals_the_score_test_inversion() -> None:
    """Its bounds are the p where the score statistic |p̂ - p| / sqrt(p(1-p)/n) equals z."""
    z, n, k = 1.959963984540054, 40, 13
    for bound in wilson(k, n):
        assert abs(k / n - bound) / math.sqrt(bound * (1 - bound) / n) == pytest.approx(z)


@pytest.mark.parametrize(("k", "n"), [(0, 0), (3, 2), (-1, 5)])
def test_wilson_refuses_nonsense(k: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson(k, n)


def test_summary_counts_rounds_and_the_lift() -> None:
    results = [
        result("a", 0),
        result("b", 0),
        result("c", 1),
        result("d", 2),
        result("e", None),
        result("f", None, single=None, repaired=None, status="error", error="down",
               error_kind="model"),
    ]  # fmt: skip
    summary = summarize("codethread", "m", 2, results)
    assert (summary.tasks, summary.errors, summary.judged) == (6, 1, 5)
    assert summary.single == Proportion(passed=2, n=5)
    assert summary.by_round == (Proportion(passed=3, n=5), Proportion(passed=4, n=5))
    assert summary.repaired == Proportion(passed=4, n=5)
    assert summary.lift == Proportion(passed=2, n=5)  # c and d were rescued
    assert summary.last_error == "down"
    data = summary.to_json()
    assert data["lift"]["points"] == 40.0
    low, high = wilson(2, 5)
    assert data["lift"]["points_low"] == round(100 * low, 2)
    assert data["lift"]["points_high"] == round(100 * high, 2)
    assert data["tokens_per_task"] == 120 and data["seconds_per_task"] == 1.5


def test_summary_without_repair_or_verdicts() -> None:
    plain = summarize("humaneval", "m", 0, [result("a", 0, repair=0), result("b", None, repair=0)])
    assert plain.single == Proportion(passed=1, n=2)
    assert plain.repaired is None and plain.lift is None and plain.by_round == ()
    errors = [result("a", None, single=None, error="down", error_kind="model")]
    nothing = summarize("humaneval", "m", 2, errors)
    assert nothing.single is None and nothing.repaired is None and nothing.judged == 0


def test_json_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    results = [result("a", 0), result("b", 1)]
    with path.open("w") as file:
        for r in results:
            write_line(file, r.to_json())
        summary = summarize("codethread", "m", 2, results)
        write_line(file, summary_json([summary], wall_seconds=3.0))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(lines[-1]) == {"summary"}
    assert lines[-1]["summary"]["suites"]["codethread"]["repaired"]["passed"] == 2
    assert read_results(path) == results


def test_reading_a_file_that_is_not_a_run(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"suite": "x"}\n')
    with pytest.raises(UserError, match="line 1 is not a result"):
        read_results(path)


def test_table_says_the_figures() -> None:
    results = [result("a", 0), result("b", 1), result("c", None)]
    out = io.StringIO()
    render(summarize("codethread", "m", 2, results), Console(file=out, width=120))
    text = out.getvalue()
    assert "pass@1 single shot" in text and "33.3 % (1/3" in text
    assert "after fix round 1" in text and "66.7 % (2/3" in text
    assert "+33.3 points (1 rescued" in text
    assert "wall time per task" in text and "1.50 s" in text
