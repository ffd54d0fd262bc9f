"""Which limit a run hit, from synthetic outcomes."""

from __future__ import annotations

import signal

import pytest

from sandbox import Limits
from sandbox.process import Killed, Outcome, _signal_of
from sandbox.verdict import decode, judge


def outcome(
    *,
    exit_code: int | None = 0,
    signum: int | None = None,
    killed: Killed | None = None,
    stderr: bytes = b"",
    stdout_size: int = 0,
    cpu_time: float = 0.1,
    oom_kills: int = 0,
) -> Outcome:
    return Outcome(
        started=killed is None,
        exit_code=exit_code,
        signal=signum,
        killed=killed,
        stdout=b"",
        stderr=stderr,
        stdout_size=stdout_size,
        stderr_size=len(stderr),
        duration=0.1,
        cpu_time=cpu_time,
        peak_rss_kb=9000,
        accounted=oom_kills > 0,
        oom_kills=oom_kills,
    )


LIMITS = Limits()


@pytest.mark.parametrize(("case", "expected"), [
    (outcome(), ("ok", 0, None)),
    (outcome(exit_code=2), ("failed", 2, None)),
    (outcome(exit_code=None, signum=signal.SIGSEGV), ("failed", None, None)),
    (outcome(killed="wall_time", exit_code=None), ("limit", None, "wall_time")),
    (outcome(killed="memory", exit_code=None), ("limit", None, "memory")),
    (outcome(killed="output", exit_code=None), ("limit", None, "output")),
    (outcome(killed="wall_time", exit_code=None,
             stderr=b"bash: fork: retry: Resource temporarily unavailable"),
     ("limit", None, "processes")),
    (outcome(exit_code=None, signum=signal.SIGXCPU), ("limit", None, "cpu_time")),
    (outcome(exit_code=None, signum=signal.SIGKILL, cpu_time=5.0), ("limit", None, "cpu_time")),
    (outcome(exit_code=None, signum=signal.SIGKILL, cpu_time=0.2), ("failed", None, None)),
    (outcome(exit_code=None, signum=signal.SIGXFSZ), ("limit", None, "file_size")),
    (outcome(exit_code=1, stderr=b"OSError: [Errno 27] File too large"),
     ("limit", 1, "file_size")),
    (outcome(exit_code=153, stderr=b"line 1: 3 File size limit exceeded head"),
     ("limit", 153, "file_size")),
    (outcome(exit_code=152, stderr=b"line 1: 7 CPU time limit exceeded ./a"),
     ("limit", 152, "cpu_time")),
    (outcome(exit_code=1, stderr=b"MemoryError"), ("limit", 1, "memory")),
    (outcome(exit_code=134, stderr=b"terminate called after throwing 'std::bad_alloc'"),
     ("limit", 134, "memory")),
    (outcome(exit_code=1, stderr=b"java.lang.OutOfMemoryError: unable to create native thread"),
     ("limit", 1, "processes")),
    (outcome(exit_code=0, stderr=b"MemoryError caught and handled"), ("ok", 0, None)),
    (outcome(exit_code=0, stderr=b"fork: retry: Resource temporarily unavailable"),
     ("ok", 0, "processes")),
    (outcome(exit_code=0, stdout_size=LIMITS.output + 1), ("ok", 0, "output")),
    (outcome(exit_code=1, stdout_size=LIMITS.output + 1), ("failed", 1, "output")),
    # the run's cgroup: the OOM killer ended the program, or a child the program outlived
    (outcome(exit_code=None, signum=signal.SIGKILL, oom_kills=1), ("limit", None, "memory")),
    (outcome(exit_code=0, oom_kills=1), ("ok", 0, "memory")),
    (outcome(killed="inodes", exit_code=None), ("limit", None, "memory")),
])  # fmt: skip
def test_judge(case: Outcome, expected: tuple[str, int | None, str | None]) -> None:
    verdict = judge(case, LIMITS)

    assert (verdict.status, verdict.exit_code, verdict.limit_hit) == expected
    if verdict.status != "ok":
        assert verdict.message


def test_messages() -> None:
    assert judge(outcome(killed="wall_time", exit_code=None), LIMITS).message == (
        "Stopped at the wall-clock limit (5 s)."
    )
    assert judge(outcome(exit_code=None, signum=signal.SIGXCPU), LIMITS).message == (
        "Killed by SIGXCPU. Stopped at the CPU time limit (5 s)."
    )
    assert judge(outcome(exit_code=1, stderr=b"MemoryError"), LIMITS).message == (
        "Ran out of memory (limits: 512 MiB of address space per process, 1 GiB resident in all)."
    )
    assert judge(outcome(exit_code=None, signum=signal.SIGSEGV), LIMITS).message == (
        "Killed by SIGSEGV."
    )


def test_messages_of_the_kernel_accounted_limits() -> None:
    oom = outcome(exit_code=None, signum=signal.SIGKILL, oom_kills=1)
    assert judge(oom, LIMITS).message == (
        "Killed by SIGKILL. Ran out of memory (limit: 1 GiB for the whole run, kernel memory "
        "included)."
    )
    assert judge(outcome(killed="inodes", exit_code=None), LIMITS).message == (
        "Made more than 16384 files and directories, the sandbox's limit (each holds kernel "
        "memory)."
    )


def test_bwrap_exit_codes_above_128_are_signals() -> None:
    assert _signal_of(0) == (0, None)
    assert _signal_of(3) == (3, None)
    assert _signal_of(137) == (None, signal.SIGKILL)
    assert _signal_of(152) == (None, signal.SIGXCPU)
    assert _signal_of(255) == (255, None)  # no signal is that high


def test_decode_marks_truncation() -> None:
    assert decode(b"abc", 3) == "abc"
    assert decode(b"abc", 10) == "abc\n[… output truncated: 3 of 10 bytes shown]"
    assert decode(b"\xff", 1) == "\ufffd"
