"""The sandbox: run a snippet (and optionally its unit tests) under bubblewrap with hard limits.

Typical use::

    sandbox = Sandbox()
    if (why := await sandbox.check()) is not None:
        print("running is disabled:", why)
    result = await sandbox.run("python", "print(input())", stdin="hi\\n")

Guarantees:

- nothing ever runs outside the sandbox: if ``bwrap`` (or ``prlimit``/``setpriv`` when the
  bot is root) is missing or cannot create its namespaces, :meth:`Sandbox.check` says why and
  every run returns status ``"unavailable"`` with that message;
- a run never raises for anything the snippet does; it returns a :class:`RunResult`. Invalid
  *arguments* (a file name with ``..``, more than :data:`MAX_INPUT` bytes of input) raise
  :class:`ValueError`;
- compiled languages are compiled in a sandbox of their own (limits ``compile_limits``), in a
  host directory created for the run that is deleted afterwards; the program then runs in a
  fresh sandbox with copies of the compiler's output. A failed compile gives status
  ``"compile_error"`` with the diagnostics in ``compile_output``. The compile directories live
  in one directory of the bot's (``codethread-sandbox-UID`` in ``scratch_dir``, mode 0711: no
  one else can list it), each ``PID-RANDOM`` with mode 0700 and owned by the run's uid, the
  sources 0600: a bot killed mid-compile leaves nothing anyone else can read, and the next
  :meth:`Sandbox.check` removes what a dead bot left;
- each step runs in a memory cgroup of its own where the host delegates one
  (:mod:`sandbox.cgroups`; ``cgroups=None`` turns that off), else under the fallback limits;
- when the call returns, no process of the run is left (see :mod:`sandbox.process`);
- a run that failed on a package the run environment lacks says how to add it
  (:func:`sandbox.environment.missing_package`);
- the files a run (or the run step of a compiled language) made in its work dir come back as
  :attr:`RunResult.artifacts`, capped (:mod:`sandbox.artifacts`), whether it passed, failed
  or hit a limit; a compile step's and a tests run's are not collected.

What the sandbox isolates is listed in :mod:`sandbox.command`; limits in :mod:`sandbox.limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Collection, Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Literal

from sandbox.cgroups import Cgroups, RunCgroup, pid_alive
from sandbox.command import CommandBuilder, Programs, SandboxFile
from sandbox.environment import RunEnvironment, missing_package
from sandbox.limits import DEFAULT_COMPILE_LIMITS, DEFAULT_LIMITS, Limits
from sandbox.process import Outcome, supervise
from sandbox.results import RunResult
from sandbox.toolchains import TOOLCHAINS, Toolchain, resolve_program
from sandbox.users import DEFAULT_UIDS, Users
from sandbox.verdict import decode, judge

__all__ = ["MAX_ARGS", "MAX_FILES", "MAX_INPUT", "Sandbox"]

#: Most bytes of code, extra files and stdin one run accepts.
MAX_INPUT = 4 * 1024 * 1024
#: Most command-line arguments one run accepts.
MAX_ARGS = 64
#: Most files in the work dir (snippet, extra files, tests, compiler output).
MAX_FILES = 32

_SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}")
_USERNS_HINT = (
    "bwrap needs unprivileged user namespaces: check sysctl user.max_user_namespaces (> 0), "
    "kernel.unprivileged_userns_clone=1 (Debian kernels before 6.x) or "
    "kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04+); in Docker, a seccomp and "
    "AppArmor profile that allow unshare/clone of namespaces"
)


def _unavailable(message: str) -> RunResult:
    return RunResult(
        status="unavailable", exit_code=None, stdout="", stderr="", duration_ms=0, message=message
    )


def _check_name(name: str) -> None:
    parts = name.split("/")
    if len(parts) > 4 or not all(_NAME_PART.fullmatch(part) for part in parts):
        raise ValueError(
            f"Invalid file name {name!r}: use up to 4 relative path parts of letters, digits "
            "and ._+- (no '..', no leading dot or slash)."
        )


class Sandbox:
    """Runs snippets under bubblewrap. Cheap to build; nothing starts until the first call.

    ``limits`` / ``compile_limits``: defaults of run and compile steps (a per-call ``limits``
    replaces ``limits``). ``uids``: the users runs execute as when the bot is root (default
    :data:`~sandbox.users.DEFAULT_UIDS`); ignored, and must be None, when it is not.
    ``scratch_dir``: where compile directories are created (default: the system temp dir).
    ``environment_dir``: the run environment :func:`sandbox.environment.prepare` built there
    is bound into every run (None: none). ``cgroups``: ``"auto"`` finds a delegated memory
    cgroup at the first :meth:`check` (:meth:`Cgroups.discover`), None uses the fallback.
    """

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        compile_limits: Limits = DEFAULT_COMPILE_LIMITS,
        uids: Sequence[int] | None = None,
        toolchains: Mapping[str, Toolchain] = TOOLCHAINS,
        scratch_dir: str | None = None,
        programs: Programs | None = None,
        environment_dir: str | os.PathLike[str] | None = None,
        cgroups: Cgroups | Literal["auto"] | None = "auto",
    ) -> None:
        self.limits = limits
        self.compile_limits = compile_limits
        self.toolchains = toolchains
        self.scratch_dir = scratch_dir
        self.environment_dir = environment_dir
        self._cgroup_choice = cgroups
        self.cgroups: Cgroups | None = cgroups if isinstance(cgroups, Cgroups) else None
        #: why runs use the fallback limits (None: a memory cgroup counts each run)
        self.fallback_reason: str | None = "not checked yet"
        self._environment = RunEnvironment()
        self._environment_key: str | None = None
        self._scratch_dir: str | None = None
        self._root = os.geteuid() == 0
        self._uid_error: str | None = None
        if self._root:
            self.users = Users(uids if uids is not None else DEFAULT_UIDS)
        else:
            self.users = Users(None)
            if uids is not None:
                self._uid_error = "Switching to the sandbox uids needs root; leave uids unset."
        self.programs = programs or Programs(
            bwrap=shutil.which("bwrap", path=_SYSTEM_PATH),
            prlimit=shutil.which("prlimit", path=_SYSTEM_PATH),
            setpriv=shutil.which("setpriv", path=_SYSTEM_PATH),
            python3=resolve_program("python3"),
        )
        self._builder: CommandBuilder | None = None
        self._reason: str | None = None
        self._checked = False

    def __repr__(self) -> str:
        return f"Sandbox(limits={self.limits!r}, users={self.users!r}, cgroups={self.cgroups!r})"

    def environment(self) -> RunEnvironment:
        """The prepared packages runs can use now (re-read when ``sandbox setup`` replaced them)."""
        if self.environment_dir is None:
            return self._environment
        try:
            key = os.readlink(os.path.join(self.environment_dir, "current"))
        except OSError:
            key = None
        if key != self._environment_key:
            self._environment = RunEnvironment.load(self.environment_dir)
            self._environment_key = key
        return self._environment

    # -- availability ----------------------------------------------------------------------

    async def check(self, *, refresh: bool = False) -> str | None:
        """None if snippets can run here; otherwise a one-line reason. Probes once, then caches.

        The probe really starts a sandbox (``true`` under the full isolation and tiny limits),
        so a kernel or container that refuses namespaces is caught here, not mid-run.
        """
        if self._checked and not refresh:
            return self._reason
        self._reason = await self._probe()
        self._checked = True
        return self._reason

    def available(self) -> bool:
        """Whether the last :meth:`check` succeeded (False before the first one)."""
        return self._checked and self._reason is None

    async def _probe(self) -> str | None:
        missing = [
            f"{name} (Debian package {package})"
            for name, package, path in (
                ("bwrap", "bubblewrap", self.programs.bwrap),
                ("prlimit", "util-linux", self.programs.prlimit if self._root else ""),
                ("setpriv", "util-linux", self.programs.setpriv if self._root else ""),
            )
            if path is None
        ]
        if missing:
            return f"Running code is disabled: {', '.join(missing)} not installed."
        if self._uid_error is not None:
            return f"Running code is disabled: {self._uid_error}"
        self._builder = CommandBuilder(self.programs)
        if self._cgroup_choice == "auto":
            found = await asyncio.to_thread(Cgroups.discover)
            self.cgroups = found if isinstance(found, Cgroups) else None
            self.fallback_reason = found if isinstance(found, str) else None
        elif self.cgroups is None:
            self.fallback_reason = "memory cgroups turned off"
        else:
            self.fallback_reason = None
        try:
            await asyncio.to_thread(self._scratch)
        except OSError as error:
            return f"Running code is disabled: no private scratch directory ({error})."
        limits = Limits(wall_time=10.0, cpu_time=2, memory=256 * 1024 * 1024)
        try:
            async with self.users.lease() as uid:
                outcome = await self._step(["true"], limits=limits, uid=uid)
        except OSError as error:
            return f"Running code is disabled: cannot start the sandbox ({error})."
        if outcome.started and outcome.exit_code == 0:
            return None
        detail = outcome.stderr.decode("utf-8", "replace").strip().splitlines()
        first = detail[-1] if detail else f"exit code {outcome.exit_code}"
        return f"Running code is disabled: bwrap could not create a sandbox ({first}). " + (
            _USERNS_HINT + "."
        )

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        args: Sequence[str] = (),
        files: Mapping[str, bytes | str] | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``code`` as a ``language`` program with ``stdin`` and command-line ``args``.

        ``files`` go next to it: inputs such as a CSV or an image (``str`` is written as
        UTF-8), mode 0444. They belong to the snippet's user inside, so a deliberate ``chmod``
        could still change one; harmless, as the work dir is private to the run. The files the
        run makes beside them come back in :attr:`RunResult.artifacts`
        (:mod:`sandbox.artifacts`).
        """
        return await self._execute(
            language, code, stdin=stdin, args=args, files=files, limits=limits
        )

    async def run_tests(
        self, language: str, code: str, tests: str, *, limits: Limits | None = None
    ) -> RunResult:
        """Run unit ``tests`` against ``code``: status ``ok`` when they ran and all passed.

        Python: ``snippet.py`` + ``test_snippet.py`` under ``python3 -m unittest``; JavaScript:
        ``snippet.js`` + ``snippet.test.js`` under ``node --test``. Other languages get status
        ``"unavailable"``. A test file in which no test ran counts as ``"failed"``.
        """
        return await self._execute(language, code, tests=tests, limits=limits)

    async def _execute(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        args: Sequence[str] = (),
        files: Mapping[str, bytes | str] | None = None,
        tests: str | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        if len(args) > MAX_ARGS or any("\0" in arg for arg in args):
            raise ValueError(f"At most {MAX_ARGS} arguments, without NUL bytes.")
        reason = await self.check()
        if reason is not None:
            return _unavailable(reason)
        toolchain = self.toolchains.get(language)
        if toolchain is None:
            known = ", ".join(self.toolchains)
            return _unavailable(f"The sandbox cannot run {language!r}; it knows {known}.")
        if (missing := toolchain.missing()) is not None:
            return _unavailable(missing)
        argv = toolchain.run
        source = toolchain.source_name(code)
        data = {source: code.encode()}
        if tests is not None:
            if toolchain.test is None:
                testable = [name for name, chain in self.toolchains.items() if chain.test]
                return _unavailable(
                    f"Running tests is not supported for {toolchain.label} "
                    f"(only for {', '.join(testable)})."
                )
            argv = toolchain.test.argv
            data[toolchain.test.file] = tests.encode()
        for name, content in (files or {}).items():
            _check_name(name)
            if name in data:
                raise ValueError(f"File name {name!r} is taken by the snippet itself.")
            if isinstance(content, str):
                data[name] = content.encode()
            elif isinstance(content, bytes):
                data[name] = content
            else:
                raise TypeError(f"File {name!r}: bytes or str, not {type(content).__name__}.")
        stdin_bytes = stdin.encode()
        given = sum(map(len, data.values())) + len(stdin_bytes) + sum(len(a) for a in args)
        if given > MAX_INPUT:
            raise ValueError(f"Code, files, stdin and arguments exceed {MAX_INPUT} bytes.")
        argv = (*argv, *args)  # the program's own arguments, after its command
        if len(data) > MAX_FILES:
            raise ValueError(f"At most {MAX_FILES} files may be given.")

        run_limits = (limits or self.limits).raised_to(toolchain.run_minimums)
        stem = source.rsplit(".", 1)[0]
        try:
            result = await self._lease_and_run(
                toolchain, data, argv, run_limits, stdin_bytes, source, stem, tests is None
            )
        except OSError as error:  # the host could not start a process (EAGAIN, ENOMEM…)
            return _unavailable(f"The sandbox could not be started ({error}).")
        if (
            tests is not None
            and toolchain.test is not None
            and result.status == "ok"
            and re.search(toolchain.test.no_tests, result.stdout + result.stderr)
        ):
            return _replace(result, status="failed", message="No test ran.")
        return result

    async def _lease_and_run(
        self,
        toolchain: Toolchain,
        data: Mapping[str, bytes],
        argv: Sequence[str],
        run_limits: Limits,
        stdin: bytes,
        source: str,
        stem: str,
        collect: bool,
    ) -> RunResult:
        async with self.users.lease() as uid:
            if toolchain.compile is not None:
                return await self._compile_and_run(
                    toolchain, data, source, stem, argv, run_limits, uid, stdin, collect
                )
            outcome = await self._step(
                _format(argv, source, stem),
                limits=run_limits,
                uid=uid,
                files=[SandboxFile(name=name, data=blob) for name, blob in data.items()],
                stdin=stdin,
                toolchain=toolchain,
                collect_besides=data.keys() if collect else None,
            )
            return self._result(outcome, run_limits, toolchain.language, list(data))

    async def _compile_and_run(
        self,
        toolchain: Toolchain,
        data: Mapping[str, bytes],
        source: str,
        stem: str,
        argv: Sequence[str],
        run_limits: Limits,
        uid: int | None,
        stdin: bytes,
        collect: bool,
    ) -> RunResult:
        assert toolchain.compile is not None
        compile_limits = self.compile_limits.raised_to(toolchain.compile_minimums)
        directory = os.path.join(self._scratch(), f"{os.getpid()}-{secrets.token_hex(8)}")
        os.mkdir(directory, 0o700)
        try:
            _write_sources(directory, data, uid)
            built = await self._step(
                _format(toolchain.compile, source, stem),
                limits=compile_limits,
                uid=uid,
                host_work_dir=directory,
                toolchain=toolchain,
            )
            compile_output = decode(built.stdout, built.stdout_size) + decode(
                built.stderr, built.stderr_size
            )
            compile_ms = round(built.duration * 1000)
            if not built.started and built.killed is None:
                return _unavailable(_setup_error(built))
            if built.killed is not None or built.exit_code != 0:
                verdict = judge(built, compile_limits)
                message = "Compilation failed."
                if verdict.limit_hit is not None and verdict.limit_hit != "output":
                    message = f"Compilation stopped: {verdict.message}"
                return RunResult(
                    status="compile_error",
                    exit_code=None,  # the program never started
                    stdout="",
                    stderr="",
                    duration_ms=0,
                    compile_output=compile_output,
                    compile_ms=compile_ms,
                    message=message,
                )
            with ExitStack() as stack:
                outputs = _collect(directory, stack, run_limits.disk)
                if isinstance(outputs, str):
                    return RunResult(
                        status="compile_error",
                        exit_code=None,
                        stdout="",
                        stderr="",
                        duration_ms=0,
                        compile_output=compile_output,
                        compile_ms=compile_ms,
                        message=outputs,
                    )
                outcome = await self._step(
                    _format(argv, source, stem),
                    limits=run_limits,
                    uid=uid,
                    files=outputs,
                    stdin=stdin,
                    toolchain=toolchain,
                    collect_besides={item.name for item in outputs} if collect else None,
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)
        return _replace(
            self._result(outcome, run_limits, toolchain.language, list(data)),
            compile_output=compile_output,
            compile_ms=compile_ms,
        )

    async def _step(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        uid: int | None,
        files: Sequence[SandboxFile] = (),
        host_work_dir: str | None = None,
        stdin: bytes = b"",
        toolchain: Toolchain | None = None,
        collect_besides: Collection[str] | None = None,
    ) -> Outcome:
        assert self._builder is not None
        cgroups = self.cgroups
        cgroup: RunCgroup | None = None
        if cgroups is not None:
            cgroup = cgroups.reuse(limits.memory_total)  # a few small writes to cgroupfs
            if cgroup is None:
                cgroup = await asyncio.to_thread(cgroups.create, limits.memory_total)
        try:
            with self._builder.build(
                argv,
                limits=limits,
                uid=uid,
                files=files,
                host_work_dir=host_work_dir,
                stdin=stdin,
                env=toolchain.env if toolchain else None,
                binds=toolchain.binds if toolchain else (),
                environment=self.environment() if toolchain else None,
                accounted=cgroup is not None,
            ) as command:
                return await supervise(
                    command.argv,
                    limits=limits,
                    stdin_fd=command.stdin_fd,
                    pass_fds=command.pass_fds,
                    status_fd=command.status_fd,
                    sweep_uid=uid,
                    cgroup=cgroup,
                    release_fd=command.release_fd,
                    on_started=command.close_child_ends,
                    collect_besides=collect_besides,
                )
        finally:
            # a cgroup still emptying is waited for off the loop
            if cgroups and cgroup and not cgroups.release(cgroup, wait=False):
                await asyncio.shield(asyncio.to_thread(cgroups.release, cgroup))

    def _scratch(self) -> str:
        """The bot's private directory of compile dirs (created, checked, cleaned once)."""
        if self._scratch_dir is None:
            self._scratch_dir = private_scratch(self.scratch_dir or tempfile.gettempdir())
        return self._scratch_dir

    @staticmethod
    def _result(
        outcome: Outcome, limits: Limits, language: str = "", files: Sequence[str] = ()
    ) -> RunResult:
        if not outcome.started and outcome.killed is None:
            return _unavailable(_setup_error(outcome))
        verdict = judge(outcome, limits)
        message = verdict.message
        if verdict.status == "failed":
            stderr = outcome.stderr.decode("utf-8", "replace")
            message = missing_package(language, stderr, files) or message
        return RunResult(
            status=verdict.status,
            exit_code=verdict.exit_code,
            stdout=decode(outcome.stdout, outcome.stdout_size),
            stderr=decode(outcome.stderr, outcome.stderr_size),
            duration_ms=round(outcome.duration * 1000),
            peak_memory_kb=outcome.peak_rss_kb,
            cpu_ms=None if outcome.cpu_time is None else round(outcome.cpu_time * 1000),
            limit_hit=verdict.limit_hit,
            truncated=max(outcome.stdout_size, outcome.stderr_size) > limits.output,
            message=message,
            artifacts=outcome.artifacts,
            artifacts_left=outcome.artifacts_left,
        )


def _replace(result: RunResult, **changes: Any) -> RunResult:
    return dataclasses.replace(result, **changes)


def _format(argv: Sequence[str], source: str, stem: str) -> list[str]:
    return [part.replace("{source}", source).replace("{stem}", stem) for part in argv]


def _setup_error(outcome: Outcome) -> str:
    lines = outcome.stderr.decode("utf-8", "replace").strip().splitlines()
    detail = lines[-1] if lines else "no message"
    return f"The sandbox could not be set up ({detail})."


def private_scratch(parent: str) -> str:
    """``parent/codethread-sandbox-EUID``: created 0711 (others may pass, not list), refused
    unless ours and not writable by others; entries of processes that are gone are removed."""
    path = os.path.join(parent, f"codethread-sandbox-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o711)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o066:
        raise PermissionError(f"{path} is not a private directory of this user")
    os.chmod(path, 0o711)
    for entry in os.scandir(path):
        owner = entry.name.split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not pid_alive(int(owner)):
            shutil.rmtree(entry.path, ignore_errors=True)
    return path


def _write_sources(directory: str, data: Mapping[str, bytes], uid: int | None) -> None:
    """Write the sources into a fresh compile dir and hand dir and files to the run's uid."""
    for name, blob in data.items():
        path = os.path.join(directory, name)
        parent = os.path.dirname(path)
        if parent != directory:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(parent, uid, uid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
        if uid is not None:
            os.chown(path, uid, uid)
    if uid is not None:
        os.chown(directory, uid, uid)


def _collect(directory: str, stack: ExitStack, budget: int) -> list[SandboxFile] | str:
    """Open every regular file the compile step left (never following a link), for copying.

    A string says why the output cannot be used (too many or too large files).
    """
    found: list[SandboxFile] = []
    total = 0
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(directory, relative)) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if name.count("/") < 3:
                        pending.append(name)
                    continue
                if not entry.is_file(follow_symlinks=False) or not _NAME_PART.fullmatch(entry.name):
                    continue
                if len(found) == MAX_FILES:
                    return f"The compiler produced more than {MAX_FILES} files; too many to run."
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                stack.callback(os.close, fd)
                info = os.fstat(fd)
                total += info.st_size
                found.append(SandboxFile(name=name, fd=fd, executable=bool(info.st_mode & 0o100)))
    if total > budget:
        return f"The compiler's output ({total} bytes) does not fit the run's disk limit."
    return found
