"""Start one sandbox command and watch it to the end: output caps, wall clock, memory, reaping.

:func:`supervise` guarantees, whatever the command does:

- it returns (or raises ``CancelledError``) only after the command's process has been reaped
  and no process of the sandbox is left: the kernel ends a pid namespace's init only after
  every other process in it is dead, and the runner waits for that init to end (bwrap already
  has when pid 1 ends by itself; after a kill, the runner waits on pid 1's pidfd). With
  ``sweep_uid`` set, every host process of that uid is also killed after any run that did not
  end by itself;
- past ``limits.wall_time`` the whole tree is killed: SIGKILL to the process group of the outer
  process (setpriv → prlimit → bwrap, one pid), to that pid, and through a pidfd to the
  sandbox's pid 1 (bwrap names it on its status pipe), whose death makes the kernel kill every
  process in the sandbox's pid namespace; bwrap's ``--die-with-parent`` does the same if this
  Python process itself dies;
- stdout and stderr are read as they come; the first ``limits.output`` bytes of each are kept,
  the rest is read and discarded (so the command never blocks on a full pipe and the pipes
  reach EOF), and past ``limits.output_kill`` bytes the tree is killed;
- every 50 ms after the first 50 ms, the resident memory of all the run's processes is summed
  from ``/proc``; above ``limits.memory_total`` the tree is killed.

Exit status, signal, peak memory and CPU time come from the sandbox's pid 1
(:mod:`sandbox.reaper`). When the runner killed the tree there is no such report: the peak is
then the largest resident size seen while sampling (None for a run killed within 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sandbox.limits import Limits
from sandbox.reaper import parse_report

__all__ = ["Killed", "Outcome", "supervise"]

Killed = Literal["wall_time", "memory", "output"]

SAMPLE_INTERVAL = 0.05  # seconds between memory samples
DRAIN_GRACE = 2.0  # seconds to wait for pipes to reach EOF once the process is gone
SWEEP_TIMEOUT = 2.0
_CHUNK = 65536
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one sandbox command."""

    #: bwrap built the sandbox and the program ran to its end (pid 1 reported how it ended)
    started: bool
    exit_code: int | None  # None when a signal ended the program, or it did not end by itself
    signal: int | None  # the signal that ended the program
    killed: Killed | None  # the runner killed the tree for this reason
    stdout: bytes  # at most limits.output bytes
    stderr: bytes
    stdout_size: int  # bytes the command wrote, kept or not
    stderr_size: int
    duration: float  # seconds from start to exit
    cpu_time: float | None  # user + system seconds of every process that ended in the sandbox
    peak_rss_kb: int | None  # peak resident memory of the largest process


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
    """Wait until the sandbox's pid 1 has ended (at most SWEEP_TIMEOUT).

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


async def supervise(
    argv: Sequence[str],
    *,
    limits: Limits,
    stdin_fd: int,
    pass_fds: Sequence[int],
    status_fd: int,
    report_fd: int,
    sweep_uid: int | None,
    on_started: Callable[[], None] | None = None,
) -> Outcome:
    """Run ``argv`` (a setpriv/prlimit/bwrap chain) with an empty environment; see module doc.

    ``status_fd`` and ``report_fd`` are the read ends of the pipes given to bwrap's
    ``--json-status-fd`` and to the reaper; their write ends must be in ``pass_fds``.
    ``sweep_uid``: a uid reserved for this run, whose every host process is killed after a
    run that did not end by itself. ``on_started`` is called once the process exists (to close
    descriptors only the child needed).
    """
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started_at = time.monotonic()
    try:
        # Not asyncio's subprocess: it reaps in its own way and hides the pid's lifetime, which
        # the pidfd/killpg logic below relies on. Popen returns once the child has exec'd
        # (vfork + exec: about a millisecond).
        proc = subprocess.Popen(  # noqa: ASYNC220
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
        if status.read_available():
            loop.remove_reader(status_fd)

    for stream in streams:
        loop.add_reader(stream.fd, on_output, stream)
    loop.add_reader(run.pidfd, on_exit)
    loop.add_reader(status_fd, on_status)
    try:
        await _watch(run, limits)
        run.reap()
        duration = time.monotonic() - started_at
        status.read_available()
        if status.exit_code is None:  # killed, or bwrap ended without pid 1's exit code
            run.kill_init()
            await _wait_for_init(run)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_GRACE):
                await asyncio.gather(*(stream.eof.wait() for stream in streams))
        for stream in streams:
            stream.read_available()
    finally:
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

    report = parse_report(_read_all(report_fd)) if run.killed is None else None
    sampled = run.sampled_peak // 1024 or None
    return Outcome(
        started=status.exit_code is not None and report is not None,
        exit_code=report.exit_code if report else None,
        signal=report.signal if report else None,
        killed=run.killed,
        stdout=bytes(streams[0].kept),
        stderr=bytes(streams[1].kept),
        stdout_size=streams[0].size,
        stderr_size=streams[1].size,
        duration=duration,
        cpu_time=report.cpu_time if report else None,
        peak_rss_kb=max(report.peak_rss_kb, sampled or 0) if report else sampled,
    )


async def _watch(run: _Run, limits: Limits) -> None:
    """Wait for the process to exit, killing it at the wall clock or the memory ceiling."""
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
                total, largest = await asyncio.to_thread(tree_rss, run.proc.pid, run.sweep_uid)
                run.sampled_peak = max(run.sampled_peak, largest)
                if total > limits.memory_total:
                    run.kill("memory")
    await run.exited.wait()


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
