"""What each language needs inside the sandbox: file names, commands, binds, minimum limits.

A :class:`Toolchain` is plain data. Commands are argv lists (no shell) run inside the sandbox's
work dir with ``PATH`` = :data:`SANDBOX_PATH`; ``{source}`` and ``{stem}`` in them are replaced
by the snippet's file name and that name without its suffix. Language names are the bot's
(``python``, ``javascript``, ``typescript``, ``bash``, ``c``, ``cpp``, ``go``, ``rust``, ``java``).

A toolchain is *present* when every program it needs resolves, on :data:`SANDBOX_PATH`, to an
executable under the read-only system binds (``/usr``): the sandbox sees nothing else, so a
toolchain installed under ``/root`` or ``/home`` (rustup, a user's Go) is reported missing rather
than failing mysteriously inside.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sandbox.limits import GiB

__all__ = [
    "SANDBOX_PATH",
    "TOOLCHAINS",
    "TestSetup",
    "Toolchain",
    "resolve_program",
    "toolchain_for",
]

#: ``PATH`` inside the sandbox (and where toolchains are looked up on the host).
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"

#: Host directories the sandbox sees (read-only); a toolchain must live below one of them.
SYSTEM_ROOTS = ("/usr/",)

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_MINIMUMS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class TestSetup:
    """How to run unit tests next to the snippet: the tests' file name and the command."""

    file: str
    argv: tuple[str, ...]
    #: a regex on stdout+stderr meaning "no test ran" (a pass that proves nothing)
    no_tests: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Toolchain:
    """One language's recipe. ``compile`` is None for interpreted languages."""

    language: str
    label: str  # what users read: "Python", "C++"
    source: str  # the snippet's file name in the work dir
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    requires: tuple[str, ...]  # programs that must be present, looked up on SANDBOX_PATH
    test: TestSetup | None = None
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: extra host paths (glob patterns) bound read-only at the same place, e.g. JVM config
    binds: tuple[str, ...] = ()
    #: limits the runtime cannot start below (raised to, never lowered; see Limits.raised_to)
    run_minimums: Mapping[str, int] = field(default_factory=lambda: _NO_MINIMUMS)
    compile_minimums: Mapping[str, int] = field(default_factory=lambda: _NO_MINIMUMS)

    def source_name(self, code: str) -> str:
        """The file name the snippet must have (Java: its public class's name)."""
        if self.language == "java":
            found = _JAVA_PUBLIC_CLASS.search(code) or _JAVA_MAIN_CLASS.search(code)
            return f"{found.group(1)}.java" if found else self.source
        return self.source

    def missing(self) -> str | None:
        """None when every required program is present; else which one is not."""
        for program in self.requires:
            if resolve_program(program) is None:
                return (
                    f"{self.label} is not installed on this machine ({program} was not found "
                    f"under /usr on {SANDBOX_PATH})."
                )
        return None


def resolve_program(program: str) -> str | None:
    """The real path of ``program`` on SANDBOX_PATH if it is a system executable for others."""
    for directory in SANDBOX_PATH.split(":"):
        candidate = os.path.join(directory, program)
        real = os.path.realpath(candidate)
        try:
            info = os.stat(real)
        except OSError:
            continue
        if (
            stat.S_ISREG(info.st_mode)
            and info.st_mode & stat.S_IXOTH
            and real.startswith(SYSTEM_ROOTS)
        ):
            return real
    return None


_JAVA_PUBLIC_CLASS = re.compile(r"\bpublic\s+(?:(?:final|abstract|static)\s+)*class\s+(\w+)")
_JAVA_MAIN_CLASS = re.compile(r"\bclass\s+(\w+)")

_JVM_FLAGS = (
    "-Xmx256m", "-Xss8m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
    "-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=256m",
)  # fmt: skip

_TOOLCHAINS: tuple[Toolchain, ...] = (
    Toolchain(
        language="python",
        label="Python",
        source="snippet.py",
        # -B: no __pycache__ writes; -s: no user site dir. Not -S/-I: snippets use exit() and
        # import helper files next to them.
        run=("python3", "-B", "-s", "{source}"),
        requires=("python3",),
        test=TestSetup(
            file="test_snippet.py",
            argv=("python3", "-B", "-s", "-m", "unittest", "-v", "test_snippet"),
            no_tests=r"(?m)^Ran 0 tests",
        ),
        # /etc/fonts: fontconfig's (matplotlib's text), else every plot complains on stderr
        binds=("/etc/python3*", "/etc/fonts"),
        # BLAS starts a thread per core at import (numpy), and threads count towards the
        # process limit: a 64-core host would use it all up. matplotlib's cache goes to /tmp,
        # not into the work dir (whose files are the run's output).
        env={
            "OPENBLAS_NUM_THREADS": "4",
            "OMP_NUM_THREADS": "4",
            "MPLCONFIGDIR": "/tmp/matplotlib",
        },
    ),
    Toolchain(
        language="javascript",
        label="JavaScript",
        source="snippet.js",
        run=("node", "{source}"),
        requires=("node",),
        test=TestSetup(
            file="snippet.test.js",
            argv=("node", "--test", "snippet.test.js"),
            no_tests=r"(?m)^# tests 0$",
        ),
        run_minimums={"memory": 1 * GiB},  # V8 reserves ~0.8 GiB of address space at start
    ),
    Toolchain(
        language="typescript",
        label="TypeScript",
        source="snippet.ts",
        compile=("tsc", "--target", "es2022", "--module", "commonjs", "--outDir", ".", "{source}"),
        run=("node", "{stem}.js"),
        requires=("tsc", "node"),
        run_minimums={"memory": 1 * GiB},
        compile_minimums={"memory": 2 * GiB},
    ),
    Toolchain(
        language="bash",
        label="Bash",
        source="snippet.sh",
        run=("bash", "{source}"),
        requires=("bash",),
    ),
    Toolchain(
        language="c",
        label="C",
        source="snippet.c",
        compile=("gcc", "-O2", "-pipe", "-Wall", "-o", "snippet", "{source}", "-lm"),
        run=("./snippet",),
        requires=("gcc",),
    ),
    Toolchain(
        language="cpp",
        label="C++",
        source="snippet.cpp",
        compile=("g++", "-O2", "-pipe", "-Wall", "-std=gnu++17", "-o", "snippet", "{source}"),
        run=("./snippet",),
        requires=("g++",),
    ),
    Toolchain(
        language="go",
        label="Go",
        source="main.go",
        compile=("go", "build", "-o", "snippet", "{source}"),
        run=("./snippet",),
        requires=("go",),
        env={
            "GOCACHE": "/tmp/.cache/go-build",
            "GOPATH": "/tmp/go",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-buildvcs=false",
            "CGO_ENABLED": "0",
            "GOMAXPROCS": "4",  # threads count towards the process limit
        },
        compile_minimums={"memory": 2 * GiB},
    ),
    Toolchain(
        language="rust",
        label="Rust",
        source="main.rs",
        compile=("rustc", "-O", "-o", "snippet", "{source}"),
        run=("./snippet",),
        requires=("rustc", "cc"),
        compile_minimums={"memory": 2 * GiB},
    ),
    Toolchain(
        language="java",
        label="Java",
        source="Main.java",
        compile=("javac", *(f"-J{flag}" for flag in _JVM_FLAGS), "-d", ".", "{source}"),
        run=("java", *_JVM_FLAGS, "-cp", ".", "{stem}"),
        requires=("javac", "java"),
        binds=("/etc/java-*",),
        run_minimums={"memory": 1 * GiB},
    ),
)

#: Every language the sandbox knows, present on this machine or not.
TOOLCHAINS: Mapping[str, Toolchain] = MappingProxyType({t.language: t for t in _TOOLCHAINS})


def toolchain_for(language: str) -> Toolchain | None:
    return TOOLCHAINS.get(language)
