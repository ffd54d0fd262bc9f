"""Benchmark the CLI's start-up: wall time and peak memory of short commands. Prints figures.

Run from the repository root: ``python -m bench.cli`` or ``python bench/cli.py`` (``--runs N``).
Each command runs as its own subprocess in a throw-away HOME with a small database (20
sessions, 3 versions each), no OpenAI key and no chat tokens, exactly as a user types it:
``codethread snippets list``, ``codethread snippets show 1``, ``codethread --help``,
``codethread models``, against ``python -c pass`` (the interpreter's own floor).

Wall time is the median of ``--runs`` runs, from spawn to exit; peak memory is the child's
maximum resident set size as the kernel accounts it (``os.wait4``'s rusage: the figure
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` gives, but for that one child), measured
from a bare launcher process (see ``_SPAWNER``).

Goal: <= 150 ms for list, show and help; that takes lazy imports (rich, prompt_toolkit, the
OpenAI SDK, slack/discord, aiohttp, prometheus_client and transformers only when used; check
with ``python -X importtime -m bot --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import SessionKey, Store

GOAL_MS = 150.0
CODE = "def fizzbuzz(n):\n    return ['Fizz' * (i % 3 == 0) or str(i) for i in range(n)]\n"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    median_ms: float
    peak_mib: float
    goal_ms: float | None


def _codethread() -> list[str]:
    """The console script next to this interpreter (what a user runs), else ``-m bot``."""
    script = Path(sys.executable).with_name("codethread")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


async def _fill(db: Path, *, sessions: int = 20, versions: int = 3) -> None:
    """Sessions of the terminal user (``console_caller``: platform console, workspace local)."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "bench"
    async with await Store.open(db) as store:
        for n in range(sessions):
            key = SessionKey(platform="console", workspace="local", channel="terminal",
                             thread=f"bench-{n}")  # fmt: skip
            session = await store.create_session(
                key=key, owner=user, language="python", model="gpt-4o-mini", title=f"snippet {n}"
            )
            for v in range(versions):
                await store.add_version(
                    session.id, request=f"change {v}", code=CODE * (v + 1), note="",
                    model="gpt-4o-mini", prompt_tokens=None, completion_tokens=None,
                    latency_ms=1,
                )  # fmt: skip


# Runs one command and prints "<wall seconds> <maxrss KiB>". It is started bare (-S -I: about
# 8 MiB) because a child's ru_maxrss also counts the memory it had before exec, a copy of its
# parent's: forked from this benchmark (25 MiB with asyncio and the store imported), every
# command would report at least that much.
_SPAWNER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
if code:
    sys.stderr.write(err.decode(errors="replace")[-400:])
    sys.exit(code)
print(wall, usage.ru_maxrss)
"""


def _measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one run of ``argv``; its output is discarded."""
    spawner = [sys.executable, "-S", "-I", "-c", _SPAWNER]
    done = subprocess.run([*spawner, *argv], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    wall, maxrss_kib = done.stdout.split()
    return float(wall), int(maxrss_kib) / 1024  # ru_maxrss is in KiB on Linux


def bench(runs: int) -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="codethread-bench-"))
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "USER": os.environ.get("USER", "bench"),
            "CODETHREAD_DB": str(home / "bench.db"),
        }
        if "PYTHONPATH" in os.environ:  # e.g. another checkout's root, to compare with
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        asyncio.run(_fill(Path(env["CODETHREAD_DB"])))
        cli = _codethread()
        commands: list[tuple[str, list[str], float | None]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("codethread --help", [*cli, "--help"], GOAL_MS),
            ("codethread snippets list", [*cli, "snippets", "list"], GOAL_MS),
            ("codethread snippets show 1", [*cli, "snippets", "show", "1"], GOAL_MS),
            ("codethread models", [*cli, "models"], None),
        ]
        figures = []
        for name, argv, goal in commands:
            _measure(argv, env)  # warm the page cache and the .pyc files
            samples = [_measure(argv, env) for _ in range(runs)]
            figures.append(
                Figure(
                    name=name,
                    median_ms=statistics.median(wall for wall, _ in samples) * 1000,
                    peak_mib=max(peak for _, peak in samples),
                    goal_ms=goal,
                )
            )
        return figures
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=11, help="runs per command (median)")
    args = parser.parse_args()
    figures = bench(args.runs)
    floor = figures[0].median_ms
    print(f"{'command':<30} {'median':>9} {'over floor':>11} {'peak RSS':>10}  goal")
    for fig in figures:
        goal = ""
        if fig.goal_ms is not None:
            verdict = "met" if fig.median_ms <= fig.goal_ms else "missed"
            goal = f"<= {fig.goal_ms:.0f} ms: {verdict}"
        print(
            f"{fig.name:<30} {fig.median_ms:>6.0f} ms {fig.median_ms - floor:>8.0f} ms "
            f"{fig.peak_mib:>6.1f} MiB  {goal}"
        )
    print(f"({args.runs} runs each, median wall time; peak = max RSS of the child)")


if __name__ == "__main__":
    main()
