"""From what happened to a process (:class:`~sandbox.process.Outcome`) to what users read.

Which limit stopped a run, in this order of evidence:

1. the runner killed the tree: ``output`` (a stream passed 16x the cap), ``memory`` (without
   a cgroup: the sum of resident memory passed ``memory_total``; or the files and directories
   passed ``inodes``, which are kernel memory too), or at the wall clock ``wall_time`` —
   reported as ``processes`` instead when stderr shows that forks failed (a fork bomb spinning
   on EAGAIN until the clock ran out);
2. the kernel's OOM killer ended a process at the run's cgroup limit → ``memory``;
3. the signal that ended the program (status 128+N from bwrap): SIGXCPU, or SIGKILL with the
   CPU limit used up → ``cpu_time``; SIGXFSZ → ``file_size``;
4. a non-zero exit whose stderr shows the runtime's own message for a refused resource
   (Python ignores SIGXFSZ and raises instead; a shell reports its child's SIGXCPU as "CPU
   time limit exceeded" → ``cpu_time``): "File too large" →
   ``file_size``; a failed fork or thread start → ``processes``; ``MemoryError``,
   ``std::bad_alloc``, "out of memory", "Cannot allocate memory" → ``memory`` (an address-space
   limit never kills, it only makes allocations fail, so this is a heuristic).

A run that ends on its own with exit status 0 keeps status ``ok`` even if it ran into a limit
on the way; then ``limit_hit`` still says which: ``processes`` when some fork failed (a fork
bomb whose first shell returned), ``output`` when output was cut (``truncated=True``). A
failed run whose output was cut is likewise ``failed`` with ``limit_hit="output"``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from sandbox.limits import Limits
from sandbox.process import Outcome
from sandbox.results import LimitHit, RunStatus

__all__ = ["Verdict", "decode", "judge"]

_FORK_FAILED = re.compile(
    r"fork: (?:retry: )?Resource temporarily unavailable"
    r"|BlockingIOError: \[Errno 11\]"
    r"|can't start new thread"
    r"|(?:spawn|fork) EAGAIN"
    r"|pthread_create.*(?:Resource temporarily unavailable|EAGAIN)"
    r"|unable to create native thread"
    r"|Cannot fork"
)
_FILE_TOO_LARGE = re.compile(r"File too large|File size limit exceeded|EFBIG|\[Errno 27\]")
_CPU_EXCEEDED = re.compile(r"CPU time limit exceeded")  # a shell reporting a child's SIGXCPU
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|std::bad_alloc|out of memory|Cannot allocate memory|ENOMEM"
    r"|OutOfMemoryError|memory exhausted|allocation failed|failed to allocate",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    status: RunStatus
    exit_code: int | None
    limit_hit: LimitHit | None
    message: str


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _size(value: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def _memory_message(limits: Limits, accounted: bool) -> str:
    if accounted:
        return (
            f"Ran out of memory (limit: {_size(limits.memory_total)} for the whole run, "
            "kernel memory included)."
        )
    return (
        f"Ran out of memory (limits: {_size(limits.memory)} of address space per process, "
        f"{_size(limits.memory_total)} resident in all)."
    )


def _limit_message(limit: LimitHit, limits: Limits, accounted: bool = False) -> str:
    return {
        "wall_time": f"Stopped at the wall-clock limit ({_seconds(limits.wall_time)}).",
        "cpu_time": f"Stopped at the CPU time limit ({_seconds(limits.cpu_time)}).",
        "memory": _memory_message(limits, accounted),
        "file_size": f"A file reached the size limit ({_size(limits.file_size)}).",
        "processes": f"Hit the process/thread limit ({limits.processes}).",
        "output": (
            f"Stopped after writing more than {_size(limits.output_kill)} of output "
            f"({_size(limits.output)} per stream is kept)."
        ),
    }[limit]


def judge(outcome: Outcome, limits: Limits) -> Verdict:
    """Status, exit code, limit and message of a run that started (see module doc)."""
    stderr = outcome.stderr.decode("utf-8", "replace")
    truncated = max(outcome.stdout_size, outcome.stderr_size) > limits.output

    if outcome.killed == "inodes":
        return Verdict(
            status="limit",
            exit_code=None,
            limit_hit="memory",
            message=(
                f"Made more than {limits.inodes} files and directories, the sandbox's limit "
                "(each holds kernel memory)."
            ),
        )
    if outcome.killed is not None:
        limit: LimitHit = outcome.killed
        if limit == "wall_time" and _FORK_FAILED.search(stderr):
            limit = "processes"
        return Verdict(
            status="limit",
            exit_code=None,
            limit_hit=limit,
            message=_limit_message(limit, limits, outcome.accounted),
        )

    signum = outcome.signal
    exit_code = outcome.exit_code
    code = 0 if exit_code == 0 else 1  # failed when a signal ended it
    died = f"Killed by {_signal_name(signum)}." if signum is not None else ""

    cpu_used = outcome.cpu_time or 0.0
    hit: LimitHit | None = None
    if outcome.oom_kills and code != 0:
        hit = "memory"
    elif signum == signal.SIGXCPU or (
        signum == signal.SIGKILL and cpu_used >= limits.cpu_time * 0.95
    ):
        hit = "cpu_time"
    elif signum == signal.SIGXFSZ:
        hit = "file_size"
    elif code != 0:
        if _CPU_EXCEEDED.search(stderr):
            hit = "cpu_time"
        elif _FILE_TOO_LARGE.search(stderr):
            hit = "file_size"
        elif _FORK_FAILED.search(stderr):
            hit = "processes"
        elif _OUT_OF_MEMORY.search(stderr):
            hit = "memory"
    if hit is not None:
        message = " ".join(filter(None, [died, _limit_message(hit, limits, outcome.accounted)]))
        return Verdict(status="limit", exit_code=exit_code, limit_hit=hit, message=message)

    if code == 0:
        status: RunStatus = "ok"
        message = ""
    else:
        status = "failed"
        message = died or f"Exited with status {exit_code}."
    if outcome.oom_kills:
        note = f"A process was ended at the memory limit ({_size(limits.memory_total)})."
        return Verdict(
            status=status,
            exit_code=exit_code,
            limit_hit="memory",
            message=" ".join(filter(None, [message, note])),
        )
    if _FORK_FAILED.search(stderr):
        note = f"Some processes or threads could not start (limit {limits.processes})."
        return Verdict(
            status=status,
            exit_code=exit_code,
            limit_hit="processes",
            message=" ".join(filter(None, [message, note])),
        )
    if truncated:
        note = f"Output past {_size(limits.output)} per stream was cut."
        return Verdict(
            status=status,
            exit_code=exit_code,
            limit_hit="output",
            message=" ".join(filter(None, [message, note])),
        )
    return Verdict(status=status, exit_code=exit_code, limit_hit=None, message=message)


def decode(kept: bytes, size: int) -> str:
    """The kept bytes as text, with a mark saying how much was cut when ``size`` is larger."""
    text = kept.decode("utf-8", "replace")
    if size > len(kept):
        text += f"\n[… output truncated: {len(kept)} of {size} bytes shown]"
    return text
