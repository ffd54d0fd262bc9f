"""Sandbox overhead: wall time of tiny programs under the sandbox against the bare toolchain.

For each language, the same program runs ``--runs`` times bare (the same interpreter or
compiler, same flags, started from this asyncio process with pipes, in a temp dir) and under
:class:`sandbox.Sandbox`, interleaved so that both see the same machine state; p50 and p99 of
each, and the difference at p50. Goal: sandboxed Python <= bare + 25 ms at p50.
C is compile + run in both columns. Needs a working sandbox (bwrap); prints why not otherwise.

    python -m bench.sandbox [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from sandbox import TOOLCHAINS, Sandbox
from sandbox.toolchains import SANDBOX_PATH, resolve_program

PROGRAMS = {
    "python": "print(1)\n",
    "javascript": "console.log(1)\n",
    "c": '#include <stdio.h>\nint main(void) { puts("1"); return 0; }\n',
}


async def _bare_step(argv: Sequence[str], cwd: str) -> None:
    # The sandbox's environment, not ours (NODE_EXTRA_CA_CERTS, for one, slows node down).
    env = {"PATH": SANDBOX_PATH, "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bare {argv} failed: {err.decode()}")


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def bare(language: str, code: str) -> float:
    """Seconds to run ``code`` with the toolchain's own commands, outside any sandbox."""
    toolchain = TOOLCHAINS[language]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        source = toolchain.source_name(code)
        _write(Path(work, source), code)
        stem = source.rsplit(".", 1)[0]
        steps = [toolchain.compile] if toolchain.compile else []
        for argv in [*steps, toolchain.run]:
            assert argv is not None
            command = [part.replace("{source}", source).replace("{stem}", stem) for part in argv]
            program = resolve_program(command[0]) if "/" not in command[0] else command[0]
            await _bare_step([program or command[0], *command[1:]], work)
    return time.perf_counter() - started


async def sandboxed(sandbox: Sandbox, language: str, code: str) -> float:
    started = time.perf_counter()
    result = await sandbox.run(language, code)
    elapsed = time.perf_counter() - started
    if result.status != "ok":
        raise RuntimeError(f"sandboxed {language} failed: {result}")
    return elapsed


async def main(runs: int) -> None:
    sandbox = Sandbox()
    if (reason := await sandbox.check()) is not None:
        print(f"no sandbox here: {reason}")
        return
    print(f"{runs} runs each, interleaved; milliseconds")
    print(f"{'language':<11} {'bare p50':>9} {'bare p99':>9} {'sandbox p50':>12} "
          f"{'sandbox p99':>12} {'overhead p50':>13}")  # fmt: skip
    for language, code in PROGRAMS.items():
        if (missing := TOOLCHAINS[language].missing()) is not None:
            print(f"{language:<11} skipped: {missing}")
            continue
        await bare(language, code)  # warm caches for both
        await sandboxed(sandbox, language, code)
        plain: list[float] = []
        boxed: list[float] = []
        for _ in range(runs):
            plain.append(await bare(language, code))
            boxed.append(await sandboxed(sandbox, language, code))
        b50, b99 = pct(plain, 50) * 1000, pct(plain, 99) * 1000
        s50, s99 = pct(boxed, 50) * 1000, pct(boxed, 99) * 1000
        print(
            f"{language:<11} {b50:>9.1f} {b99:>9.1f} {s50:>12.1f} {s99:>12.1f} {s50 - b50:>+13.1f}"
        )
        if language == "python":
            mean = statistics.fmean(boxed) * 1000 - statistics.fmean(plain) * 1000
            print(f"{'':<11} python mean overhead {mean:+.1f} ms (goal at p50: <= +25 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    asyncio.run(main(parser.parse_args().runs))
