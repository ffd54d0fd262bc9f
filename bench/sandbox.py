"""Sandbox overhead: tiny programs under the sandbox against the bare toolchain and bare bwrap.

For each language, the same program runs ``--runs`` times bare (the same interpreter or
compiler, same flags, started from this asyncio process with pipes, in a temp dir) and under
:class:`sandbox.Sandbox`, interleaved so that all see the same machine state; p50 and p99 of
each, and the difference at p50. For Python also a *minimal bwrap* column (namespaces, ``/usr``,
``/proc``, ``/dev``, nothing else: the floor any bubblewrap sandbox pays), and the sandbox both
with a memory cgroup (where this machine delegates one) and with the fallback accounting.
Goal: sandboxed ``print(1)`` <= bare + 7 ms at p50 with the cgroup accounting on.

With ``--numpy`` (the default) a run environment with numpy is prepared in a temp dir through
:func:`sandbox.prepare` - pip with this machine's own index configuration - and ``import numpy``
is timed bare (the venv's python) and sandboxed. Goal: within 50 ms of bare. Skipped, with the
reason, where pip cannot get numpy.

The *artifact* row is Python writing a 1 MiB ``plot.png``, which the sandbox returns (it is
checked): what keeping the work dir and reading it back cost on top of the run itself.

C is compile + run in both columns. Needs a working sandbox (bwrap); prints why not otherwise.

    python -m bench.sandbox [--runs 40] [--no-numpy]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from sandbox import TOOLCHAINS, Sandbox, Settings, SetupError, prepare
from sandbox.toolchains import SANDBOX_PATH, resolve_program

PROGRAMS = {
    "python": "print(1)\n",
    "javascript": "console.log(1)\n",
    "c": '#include <stdio.h>\nint main(void) { puts("1"); return 0; }\n',
}
NUMPY = "import numpy\nprint(numpy.ones(3).sum())\n"
#: a run that makes a file: the sandbox returns it as an artifact (read after the run)
ARTIFACT = "open('plot.png', 'wb').write(bytes(1 << 20))\n"


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


async def bare(language: str, code: str, python3: str | None = None) -> float:
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
            if python3 is not None and command[0] == "python3":
                program = python3
            await _bare_step([program or command[0], *command[1:]], work)
    return time.perf_counter() - started


def _minimal_bwrap_argv(work: str) -> list[str]:
    bwrap = shutil.which("bwrap", path="/usr/bin:/bin")
    assert bwrap is not None
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        target = Path(link)
        if target.is_symlink():
            argv += ["--symlink", str(target.readlink()), link]
    argv += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", work, "/tmp/work"]
    argv += ["--chdir", "/tmp/work", "--", "python3", "-B", "-s", "snippet.py"]
    return argv


async def minimal_bwrap(code: str) -> float:
    """Seconds to run Python ``code`` under the least bwrap that isolates anything."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        _write(Path(work, "snippet.py"), code)
        await _bare_step(_minimal_bwrap_argv(work), work)
    return time.perf_counter() - started


async def sandboxed(sandbox: Sandbox, language: str, code: str) -> float:
    started = time.perf_counter()
    result = await sandbox.run(language, code)
    elapsed = time.perf_counter() - started
    if result.status != "ok":
        raise RuntimeError(f"sandboxed {language} failed: {result}")
    if code == ARTIFACT and [item.size for item in result.artifacts] != [1 << 20]:
        raise RuntimeError(f"the artifact did not come back: {result}")
    return elapsed


Timer = Callable[[], Awaitable[float]]


async def measure(runs: int, columns: dict[str, Timer]) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of each column, run interleaved after one warm-up each."""
    for timer in columns.values():
        await timer()
    times: dict[str, list[float]] = {name: [] for name in columns}
    for _ in range(runs):
        for name, timer in columns.items():
            times[name].append(await timer())
    return {name: (pct(v, 50) * 1000, pct(v, 99) * 1000) for name, v in times.items()}


def report(label: str, figures: dict[str, tuple[float, float]]) -> None:
    base = figures["bare"][0]
    cells = "  ".join(
        f"{name} {p50:.1f}/{p99:.1f}" + ("" if name == "bare" else f" ({p50 - base:+.1f})")
        for name, (p50, p99) in figures.items()
    )
    print(f"{label:<11} {cells}")


async def python_columns(runs: int, cgroup: Sandbox, fallback: Sandbox) -> None:
    code = PROGRAMS["python"]
    columns: dict[str, Timer] = {
        "bare": lambda: bare("python", code),
        "bwrap": lambda: minimal_bwrap(code),
    }
    if cgroup.cgroups is not None:
        columns["sandbox+cgroup"] = lambda: sandboxed(cgroup, "python", code)
    columns["sandbox(fallback)"] = lambda: sandboxed(fallback, "python", code)
    figures = await measure(runs, columns)
    report("python", figures)
    main = "sandbox+cgroup" if "sandbox+cgroup" in figures else "sandbox(fallback)"
    over = figures[main][0] - figures["bare"][0]
    print(f"{'':<11} {main} - bare at p50: {over:+.1f} ms (goal: <= +7 ms)")
    if cgroup.cgroups is None:
        print(f"{'':<11} no memory cgroup here: {cgroup.fallback_reason}")


async def numpy_columns(runs: int, cgroup: Sandbox) -> None:
    python3 = resolve_program("python3")
    if python3 is None:
        print("numpy       skipped: no python3 under /usr")
        return
    with tempfile.TemporaryDirectory(prefix="codethread-bench-") as scratch:
        os.chmod(scratch, 0o755)  # the runs' uids must reach the venv
        settings = Settings(python_packages=("numpy",), environment_dir=Path(scratch, "env"))
        try:
            environment = await asyncio.to_thread(prepare, settings, python3=python3)
        except SetupError as error:
            print(f"numpy       skipped: {error}")
            return
        assert environment.python_dir is not None
        venv_python = str(Path(environment.python_dir, "bin", "python3"))
        sandbox = Sandbox(environment_dir=settings.directory, cgroups=cgroup.cgroups)
        await sandbox.check()
        version = environment.python_packages["numpy"]
        figures = await measure(
            runs,
            {
                "bare": lambda: bare("python", NUMPY, python3=venv_python),
                "sandbox": lambda: sandboxed(sandbox, "python", NUMPY),
            },
        )
        report(f"numpy {version}", figures)
        over = figures["sandbox"][0] - figures["bare"][0]
        print(f"{'':<11} import numpy, sandbox - bare at p50: {over:+.1f} ms (goal: <= +50 ms)")


async def main(runs: int, numpy: bool) -> None:
    cgroup, fallback = Sandbox(), Sandbox(cgroups=None)
    if (reason := await cgroup.check()) is not None:
        print(f"no sandbox here: {reason}")
        return
    await fallback.check()
    print(f"{runs} runs each, interleaved; milliseconds, p50/p99 (p50 - bare)")
    await python_columns(runs, cgroup, fallback)
    figures = await measure(
        runs,
        {
            "bare": lambda: bare("python", ARTIFACT),
            "sandbox": lambda: sandboxed(cgroup, "python", ARTIFACT),
        },
    )
    report("artifact", figures)
    for language in ("javascript", "c"):
        if (missing := TOOLCHAINS[language].missing()) is not None:
            print(f"{language:<11} skipped: {missing}")
            continue
        code = PROGRAMS[language]
        figures = await measure(
            runs,
            {
                "bare": lambda language=language, code=code: bare(language, code),
                "sandbox": lambda language=language, code=code: sandboxed(cgroup, language, code),
            },
        )
        report(language, figures)
    if numpy:
        await numpy_columns(runs, cgroup)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--no-numpy", dest="numpy", action="store_false")
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.numpy))
