"""Start one sandbox command and watch it to the end: output caps, wall clock, memory, reaping.

:func:`supervise` guarantees, whatever the command does:

- it returns (or raises ``CancelledError``) only after the command's process has been reaped
  and no process of the sandbox is left: the kernel ends a pid namespace's init only after
  every other process in it is dead, and the runner waits for that init to end (on its pidfd;
  bwrap names it on its status pipe). If the bot is that init's reaper now - the bot is PID 1
  or a subreaper - it reaps it too (:mod:`sandbox.reaper`). With ``sweep_uid`` set, every host
  process of that uid is also killed after any run that did not end by itself;
- the program's rlimits are set on the sandbox's pid 1 while bwrap holds it (``--block-fd``),
  before the program starts: inside the sandbox's user namespace, so the process limit counts
  only the run (a run under another uid has ``prlimit`` set them inside instead);
- with a run cgroup, the command is started from the cgroup's parked thread (v1: it is born
  inside), or the sandbox's pid 1 is moved into it while bwrap holds it (v2); afterwards the
  cgroup says the run's peak memory, CPU time and whether the OOM killer ended something at
  the run's memory limit;
- past ``limits.wall_time`` the whole tree is killed: SIGKILL to the process group of the outer
  process (setpriv → bwrap, one pid), to that pid, and through a pidfd to the sandbox's pid 1,
  whose death makes the kernel kill every process in the sandbox's pid namespace; bwrap's
  ``--die-with-parent`` does the same if this Python process itself dies;
- stdout and stderr are read as they come; the first ``limits.output`` bytes of each are kept,
  the rest is read and discarded (so the command never blocks on a full pipe and the pipes
  reach EOF), and past ``limits.output_kill`` bytes the tree is killed;
- with ``collect_besides``, the work dir is opened from the host once bwrap has set the
  sandbox up and before the program is released, and read once nothing of the sandbox is left
  (:mod:`sandbox.artifacts`): the files the run made come back in the outcome;
- every 50 ms after the first 50 ms: the inodes in the sandbox's ``/tmp`` and ``/dev/shm``
  are counted (``statvfs`` through ``/proc/PID/root``), and above ``limits.inodes`` the tree is
  killed; without a cgroup, the resident memory of all the run's processes is summed from
  ``/proc`` too, and above ``limits.memory_total`` the tree is killed.

The exit status comes from bwrap's status pipe, as bwrap's init saw the program end: a status
above 128 means the signal ``status - 128`` ended it, as a shell reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import select
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal

from sandbox.artifacts import Artifact, Collected, WorkDir
from sandbox.cgroups import RunCgroup
from sandbox.command import WORK_DIR
from sandbox.limits import Limits
from sandbox.reaper import reap

__all__ = ["Killed", "Outcome", "supervise"]

Killed = Literal["wall_time", "memory", "output", "inodes"]

SAMPLE_INTERVAL = 0.05  # seconds between memory samples
DRAIN_GRACE = 2.0  # seconds to wait for pipes to reach EOF once the process is gone
SWEEP_TIMEOUT = 2.0
_CHUNK = 65536
_PAGE = os.sysconf("SC_PAGE_SIZE")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one sandbox command."""

    #: bwrap built the sandbox and the program ran to its end (bwrap reported how it ended)
    started: bool
    exit_code: int | None  # None when a signal ended the program, or it did not end by itself
    signal: int | None  # the signal that ended the program
    killed: Killed | None  # the runner killed the tree for this reason
    stdout: bytes  # at most limits.output bytes
    stderr: bytes
    stdout_size: int  # bytes the command wrote, kept or not
    stderr_size: int
    duration: float  # seconds from start to exit
    cpu_time: float | None  # user + system seconds of the run's processes (cgroup v2 only)
    #: with a cgroup: the run's peak memory, kernel objects included; without: the largest
    #: resident size seen while sampling (None for a run that ended within 50 ms)
    peak_rss_kb: int | None
    accounted: bool = False  # a memory cgroup counted the run
    oom_kills: int = 0  # processes the kernel's OOM killer ended at the run's memory limit
    artifacts: tuple[Artifact, ...] = ()  # files the run made (see sandbox.artifacts)
    artifacts_left: int = 0  # more such files, past the caps


class _Stream:
    """Reads one pipe without blocking: keeps the first ``cap`` bytes, counts the rest."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd = fd
        self.cap = cap
        self.kept = bytearray()
        self.size = 0
        self.eof = asyncio.Event()
        os.set_blocking(fd, False)

    def read_available(self) -> None:
        for _ in range(16):  # at most 1 MiB per wake-up, then let other work run
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof.set()
                return
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.size += len(chunk)


class _Status:
    """bwrap's ``--json-status-fd`` messages, read as they come.

    The first names the sandbox's pid 1 (its host pid) and its pid namespace; the runner opens
    a pidfd on it at once (checking that the process really is in that namespace), so it can
    kill it and wait for it even after bwrap itself is gone. The last, ``exit-code``, only
    comes if the sandbox was set up and its pid 1 ended by itself.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.init_fd: int | None = None  # pidfd of the sandbox's pid 1
        self.init_pid: int | None = None  # its host pid (valid while init_fd is open)
        self.exit_code: int | None = None
        os.set_blocking(fd, False)

    def read_available(self) -> bool:
        """Take in what the pipe holds; True once it reached end of file."""
        eof = False
        try:
            while len(self.data) < _CHUNK:
                chunk = os.read(self.fd, _CHUNK)
                if not chunk:
                    eof = True
                    break
                self.data += chunk
        except BlockingIOError:
            pass
        except OSError:
            eof = True
        self._parse()
        return eof or len(self.data) >= _CHUNK

    def _parse(self) -> None:
        for line in self.data.splitlines():
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if not isinstance(message, dict):
                    continue
                if isinstance(message.get("exit-code"), int):
                    self.exit_code = int(message["exit-code"])
                if self.init_fd is None and isinstance(message.get("child-pid"), int):
                    self.init_fd = _open_init(message["child-pid"], message.get("pid-namespace"))
                    if self.init_fd is not None:
                        self.init_pid = int(message["child-pid"])

    def close(self) -> None:
        if self.init_fd is not None:
            os.close(self.init_fd)
            self.init_fd = None


def _open_init(pid: int, namespace: object) -> int | None:
    """A pidfd on ``pid`` if it is alive and is the pid 1 of pid namespace ``namespace``."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        # Checked after opening, then alive: so the pidfd and the checked process are one.
        if os.readlink(f"/proc/{pid}/ns/pid") == f"pid:[{namespace}]":
            signal.pidfd_send_signal(pidfd, 0)
            return pidfd
    except OSError:
        pass
    os.close(pidfd)
    return None


class _Run:
    def __init__(self, proc: subprocess.Popen[bytes], status: _Status, sweep_uid: int | None):
        self.proc = proc
        self.status = status
        self.sweep_uid = sweep_uid
        self.killed: Killed | None = None
        self.exited = asyncio.Event()
        self.pidfd = os.pidfd_open(proc.pid)
        self.reaped = False
        self.sampled_peak = 0  # bytes: the largest process seen while sampling

    def kill(self, reason: Killed) -> None:
        if self.killed is None:
            self.killed = reason
        if not self.reaped:
            # The group (setpriv/prlimit/bwrap are one pid, the group leader); not reaped yet,
            # so neither the pid nor the group id can have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        self.kill_init()

    def kill_init(self) -> None:
        """SIGKILL the sandbox's pid 1 (known once bwrap has named it), ending the namespace."""
        self.status.read_available()
        if self.status.init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.status.init_fd, signal.SIGKILL)

    def reap(self) -> None:
        _, status = os.waitpid(self.proc.pid, 0)
        self.reaped = True
        self.proc.returncode = os.waitstatus_to_exitcode(status)


async def _wait_for_init(run: _Run) -> None:
    """Wait until the sandbox's pid 1 has ended (at most SWEEP_TIMEOUT), and reap it if ours.

    The kernel ends a pid namespace's init only after it has killed and reaped every other
    process in the namespace, so this is "wait until nothing of the sandbox is left".
    """
    run.status.read_available()
    init_fd = run.status.init_fd
    if init_fd is None:
        return
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    def on_gone() -> None:
        loop.remove_reader(init_fd)
        gone.set()

    loop.add_reader(init_fd, on_gone)
    try:
        async with asyncio.timeout(SWEEP_TIMEOUT):
            await gone.wait()
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(init_fd)
    reap(init_fd)


async def _start_in(
    spawner: Executor, start: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """``start()`` on the spawner's thread; if cancelled meanwhile, the process is killed."""
    future = asyncio.get_running_loop().run_in_executor(spawner, start)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            proc = await future
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


def _signal_of(code: int) -> tuple[int | None, int | None]:
    """(exit status, signal) of bwrap's exit code: above 128, a signal, as shells report it."""
    if 128 < code <= 128 + 64:
        return None, code - 128
    return code, None


async def supervise(
    argv: Sequence[str],
    *,
    limits: Limits,
    stdin_fd: int,
    pass_fds: Sequence[int],
    status_fd: int,
    sweep_uid: int | None,
    cgroup: RunCgroup | None = None,
    release_fd: int = -1,
    on_started: Callable[[], None] | None = None,
    collect_besides: Collection[str] | None = None,
) -> Outcome:
    """Run ``argv`` (a setpriv/bwrap chain) with an empty environment; see the module doc.

    ``status_fd`` is the read end of the pipe given to bwrap's ``--json-status-fd``; its write
    end must be in ``pass_fds``. ``release_fd``: the write end of bwrap's ``--block-fd`` pipe,
    written once the program's limits are set on the sandbox's pid 1 (``limits.rlimits``) and,
    with a ``cgroup`` it was not born in, it has been moved there (the caller closes it).
    ``sweep_uid``: a uid reserved for this run, whose every host process is killed after a run
    that did not end by itself (and whose limits ``prlimit`` sets inside). ``on_started`` is
    called once the process exists (to close descriptors only the child needed).
    ``collect_besides``: the names of the run's input files; given, the work dir is opened
    before the program is released (:class:`~sandbox.artifacts.WorkDir`) and the files the run
    made there besides these come back in :attr:`Outcome.artifacts`, read once nothing of the
    sandbox is left (whether the program ended by itself or was killed).

    Raises OSError when the command cannot be started or placed in its cgroup.
    """
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started_at = time.monotonic()

    # Not asyncio's subprocess: it reaps in its own way and hides the pid's lifetime, which
    # the pidfd/killpg logic below relies on. Popen returns once the child has exec'd
    # (vfork + exec: about a millisecond).
    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=stdin_fd,
            stdout=out_w,
            stderr=err_w,
            env={},
            cwd="/",
            close_fds=True,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
        )

    try:
        if cgroup is not None and cgroup.spawner is not None:
            proc = await _start_in(cgroup.spawner, start)
        else:
            proc = start()
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)  # the child holds its own copies
        os.close(err_w)

    if on_started is not None:
        on_started()
    status = _Status(status_fd)
    run = _Run(proc, status, sweep_uid)
    streams = (_Stream(out_r, limits.output), _Stream(err_r, limits.output))
    admitted = False
    # a run under another uid sets them itself (prlimit inside): see sandbox.limits
    rlimits = [] if sweep_uid is not None else limits.rlimits(address_space=cgroup is None)
    failure: list[OSError] = []
    work = WorkDir(WORK_DIR) if collect_besides is not None else None
    holding: list[asyncio.Task[None]] = []

    def release() -> None:
        try:
            os.write(release_fd, b"go")
        except BrokenPipeError:
            pass  # bwrap ended in set-up (or was killed meanwhile): its outcome says why
        except OSError as error:
            failure.append(error)
            run.kill("wall_time")

    async def hold_then_release(init_pid: int, init_fd: int) -> None:
        assert work is not None
        try:
            await work.hold(init_pid, init_fd)
        except OSError as error:  # the run goes on, without artifacts
            _log.debug("work dir of sandbox %d not held: %s", init_pid, error)
        release()

    def on_output(stream: _Stream) -> None:
        stream.read_available()
        if stream.eof.is_set():
            loop.remove_reader(stream.fd)
        if stream.size > limits.output_kill and run.killed is None:
            run.kill("output")

    def on_exit() -> None:
        loop.remove_reader(run.pidfd)  # stays readable: would fire on every loop turn
        run.exited.set()

    def on_status() -> None:
        nonlocal admitted
        if status.read_available():
            loop.remove_reader(status_fd)
        if not admitted and status.init_pid is not None:
            admitted = True
            try:
                for which, value in rlimits:
                    resource.prlimit(status.init_pid, which, value)
                if cgroup is not None and cgroup.spawner is None:
                    cgroup.admit(status.init_pid)
            except OSError as error:
                failure.append(error)
                run.kill("wall_time")
                return
            if work is None or status.init_fd is None:
                release()
            else:  # bwrap may still be setting the sandbox up: wait for it off the loop
                holding.append(loop.create_task(hold_then_release(status.init_pid, status.init_fd)))

    for stream in streams:
        loop.add_reader(stream.fd, on_output, stream)
    loop.add_reader(run.pidfd, on_exit)
    loop.add_reader(status_fd, on_status)
    try:
        await _watch(run, limits, cgroup)
        run.reap()
        duration = time.monotonic() - started_at
        status.read_available()
        if status.exit_code is None:  # killed, or bwrap ended without the program's status
            run.kill_init()
        await _wait_for_init(run)  # bwrap's init dies right after bwrap (--die-with-parent)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_GRACE):
                await asyncio.gather(*(stream.eof.wait() for stream in streams))
        for stream in streams:
            stream.read_available()
        found = Collected()
        if work is not None and work.held and _ended(status.init_fd):
            assert collect_besides is not None
            if not work.nothing_made(collect_besides):
                found = await asyncio.to_thread(work.collect, collect_besides)
    finally:
        for task in holding:
            task.cancel()  # its thread stops soon; what it opens then is closed at once
        if work is not None:
            work.close()
        loop.remove_reader(run.pidfd)
        loop.remove_reader(status_fd)
        for stream in streams:
            loop.remove_reader(stream.fd)
        try:
            if not run.reaped:  # cancelled or failed: never leave the tree behind
                run.kill(run.killed or "wall_time")
                run.reap()
                await asyncio.shield(_wait_for_init(run))
            status.read_available()
            if sweep_uid is not None and (run.killed is not None or status.exit_code is None):
                await asyncio.shield(asyncio.to_thread(sweep, sweep_uid))
        finally:
            os.close(run.pidfd)
            for stream in streams:
                os.close(stream.fd)
            status.close()

    if failure:
        raise OSError(f"cannot set the run's limits or cgroup: {failure[0].strerror}")
    exit_code, signum = (None, None) if status.exit_code is None else _signal_of(status.exit_code)
    peak = run.sampled_peak // 1024 or None
    cpu_time, oom_kills = None, 0
    if cgroup is not None:
        with contextlib.suppress(OSError, ValueError):
            stats = cgroup.stats()
            peak = stats.peak // 1024 if stats.peak is not None else None
            cpu_time, oom_kills = stats.cpu_time, stats.oom_kills
    return Outcome(
        started=status.exit_code is not None and run.killed is None,
        exit_code=exit_code,
        signal=signum,
        killed=run.killed,
        stdout=bytes(streams[0].kept),
        stderr=bytes(streams[1].kept),
        stdout_size=streams[0].size,
        stderr_size=streams[1].size,
        duration=duration,
        cpu_time=cpu_time,
        peak_rss_kb=peak,
        accounted=cgroup is not None,
        oom_kills=oom_kills,
        artifacts=found.artifacts,
        artifacts_left=found.left,
    )


def _ended(pidfd: int | None) -> bool:
    """Whether the process of ``pidfd`` has ended (so has everything in its pid namespace)."""
    if pidfd is None:
        return False
    waiting = select.poll()
    waiting.register(pidfd, select.POLLIN)
    return bool(waiting.poll(0))


async def _watch(run: _Run, limits: Limits, cgroup: RunCgroup | None) -> None:
    """Wait for the process to exit, killing it at the wall clock or a sampled limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.wall_time
    while not run.exited.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            run.kill("wall_time")
            break
        try:
            async with asyncio.timeout(min(remaining, SAMPLE_INTERVAL)):
                await run.exited.wait()
        except TimeoutError:
            if run.killed is None and not run.exited.is_set():
                reason = await asyncio.to_thread(_sample, run, limits, cgroup)
                if reason is not None and run.killed is None:
                    run.kill(reason)
    await run.exited.wait()


def _sample(run: _Run, limits: Limits, cgroup: RunCgroup | None) -> Killed | None:
    """One look at the running sandbox (in a worker thread): the limit it is over, if any.

    With a cgroup: whether the OOM killer has ended a process of the run (cgroup v1 ends one
    process, not the run; v2's ``memory.oom.group`` already ends them all).
    """
    init = run.status.init_pid
    if init is not None and inodes_used(init) > limits.inodes:
        return "inodes"
    if cgroup is not None:
        with contextlib.suppress(OSError, ValueError):
            if cgroup.oom_kills():
                return "memory"
    else:
        total, largest = tree_rss(run.proc.pid, run.sweep_uid)
        run.sampled_peak = max(run.sampled_peak, largest)
        if total > limits.memory_total:
            return "memory"
    return None


def inodes_used(init_pid: int) -> int:
    """Inodes in use in the sandbox's writable tmpfs mounts (``/tmp``, ``/dev/shm``)."""
    used = 0
    for mount in ("tmp", "dev/shm"):
        try:
            info = os.statvfs(f"/proc/{init_pid}/root/{mount}")
        except OSError:
            continue  # gone meanwhile, or not set up yet
        used += info.f_files - info.f_ffree
    return used


def _read_all(fd: int, limit: int = _CHUNK) -> bytes:
    """What a pipe holds now (its writers are gone), up to ``limit`` bytes."""
    data = b""
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
            data += chunk
    return data


# -- /proc -----------------------------------------------------------------------------------


def _real_uid(pid: str) -> int:
    with open(f"/proc/{pid}/status", "rb") as file:
        for line in file:
            if line.startswith(b"Uid:"):
                return int(line.split()[1])
    raise OSError(f"no Uid line for {pid}")


def _processes(uid: int) -> list[tuple[int, int, int]]:
    """(pid, ppid, resident bytes) of every live host process whose real uid is ``uid``.

    Zombies are left out (they hold no memory and cannot be killed again). The owner of
    ``/proc/PID`` is the effective uid, or root for a non-dumpable process, so only those two
    cases need the ``status`` file read.
    """
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            owner = os.stat(f"/proc/{name}").st_uid
            if owner not in (uid, 0) or (owner == 0 and _real_uid(name) != uid):
                continue
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                continue
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        found.append((int(name), int(fields[1]), int(fields[21]) * _PAGE))
    return found


def tree_rss(root: int, uid: int | None) -> tuple[int, int]:
    """Resident bytes of ``root`` and its descendants, in all and of the largest one.

    With ``uid`` (reserved for this run): of every process of that uid.
    """
    if uid is not None:
        sizes = [rss for _, _, rss in _processes(uid)]
        return sum(sizes), max(sizes, default=0)
    processes = _processes(os.getuid())
    children: dict[int, list[int]] = {}
    rss_of = {}
    for pid, ppid, rss in processes:
        children.setdefault(ppid, []).append(pid)
        rss_of[pid] = rss
    total, largest, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        size = rss_of.get(pid, 0)
        total += size
        largest = max(largest, size)
        todo.extend(children.get(pid, ()))
    return total, largest


def sweep(uid: int) -> int:
    """SIGKILL every host process owned by ``uid`` until none is left; how many were seen.

    Each is signalled through a pidfd opened *before* re-checking its owner, so a pid reused
    by another user's process in between is never hit.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + SWEEP_TIMEOUT
    while (left := _processes(uid)) and time.monotonic() < deadline:
        for pid, _, _ in left:
            seen.add(pid)
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(pidfd)
        time.sleep(0.005)
    return len(seen)
