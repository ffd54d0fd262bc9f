"""What a sandboxed run reports: plain values, no process handles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sandbox.artifacts import Artifact

__all__ = ["FIXABLE", "LimitHit", "RunResult", "RunStatus"]

#: ok: exit 0; failed: non-zero exit; compile_error: the compile step failed;
#: limit: a limit killed it (see ``limit_hit``); unavailable: no toolchain / no sandbox
RunStatus = Literal["ok", "failed", "compile_error", "limit", "unavailable"]
#: the statuses that say the code is broken, as opposed to "could not run at all"
FIXABLE = frozenset({"failed", "compile_error", "limit"})
LimitHit = Literal["wall_time", "cpu_time", "memory", "file_size", "processes", "output"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    status: RunStatus
    exit_code: int | None  # None when killed by a signal or never started
    stdout: str
    stderr: str
    duration_ms: int  # wall time of the run step (compile excluded; sandbox set-up included)
    peak_memory_kb: int | None = None  # peak resident memory of the largest process
    # The limit that stopped the run (status "limit"); with "ok"/"failed", one met on the way
    # that did not stop it: "output" (output was cut) or "processes" (a fork was refused).
    limit_hit: LimitHit | None = None
    truncated: bool = False  # stdout or stderr was cut at the output cap
    compile_output: str = ""  # compiler diagnostics of compiled languages
    compile_ms: int = 0
    message: str = ""  # a human explanation for unavailable / limit statuses
    cpu_ms: int | None = None  # user + system CPU time of the run step's processes
    # files the run made in its work dir, by name (see sandbox.artifacts); the run step's
    # only, whatever its status: a program that crashed after writing a plot still made it
    artifacts: tuple[Artifact, ...] = ()
    artifacts_left: int = 0  # more such files, past MAX_ARTIFACTS / MAX_ARTIFACT_BYTES

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def fixable(self) -> bool:
        """The code itself failed (not the sandbox or a missing toolchain): worth a Fix."""
        return self.status in FIXABLE
