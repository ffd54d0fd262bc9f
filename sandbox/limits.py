"""Resource limits of one sandboxed step (a compile or a run), and their defaults.

Every limit is enforced by the kernel or by the runner, never by the snippet's goodwill:

============  ==================  =================================================================
field         default (run)       how it is enforced
============  ==================  =================================================================
wall_time     5 s                 the runner kills the whole process tree (compile: 15 s)
cpu_time      5 s                 ``RLIMIT_CPU`` per process: SIGXCPU, then SIGKILL 1 s later
memory        512 MiB             ``RLIMIT_AS`` per process: address space (node, java: 1 GiB;
                                  compile: 1 GiB)
memory_total  1 GiB               resident memory of all the run's processes together, sampled
                                  every 50 ms by the runner, which kills the tree above it
file_size     16 MiB              ``RLIMIT_FSIZE``: largest file a process may write
open_files    64                  ``RLIMIT_NOFILE``, set by the sandbox's pid 1 on the program (the
                                  chain that builds the sandbox gets at least 256: bwrap holds the
                                  descriptors of every file it copies in)
processes     64                  ``RLIMIT_NPROC``: processes *and threads* of the run's uid
output        64 KiB              bytes kept per stream (stdout, stderr); past 16x this the run is
                                  killed
disk          64 MiB              size of the private tmpfs holding ``/tmp`` and the work dir
============  ==================  =================================================================

For comparison, piston's defaults are 3 s run, 10 s compile, 64 processes, 1 KiB output and no
memory limit. A toolchain may *raise* a limit it cannot start below (see
:attr:`sandbox.toolchains.Toolchain.minimums`); nothing ever lowers a limit the caller gave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_COMPILE_LIMITS", "DEFAULT_LIMITS", "GiB", "KiB", "Limits", "MiB"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: A stream that produces this many times ``output`` bytes gets the run killed.
OUTPUT_KILL_FACTOR = 16
#: ``RLIMIT_NOFILE`` of setpriv/prlimit/bwrap and the sandbox's pid 1 (not of the program).
CHAIN_OPEN_FILES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Hard limits of one sandboxed step; sizes in bytes, times in seconds.

    Values are checked on construction (:class:`ValueError` for a non-positive one), so a
    ``Limits`` that exists can be turned into ``prlimit`` arguments as is.
    """

    wall_time: float = 5.0
    cpu_time: int = 5
    memory: int = 512 * MiB
    memory_total: int = 1 * GiB
    file_size: int = 16 * MiB
    open_files: int = 64
    processes: int = 64
    output: int = 64 * KiB
    disk: int = 64 * MiB

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive number, not {value!r}")
        if self.open_files < 8:
            raise ValueError("Limits.open_files must be at least 8 (stdio and the loader)")

    def replace(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def raised_to(self, minimums: Mapping[str, float]) -> Limits:
        """A copy where each field named in ``minimums`` is at least that value."""
        changes = {name: value for name, value in minimums.items() if getattr(self, name) < value}
        return self.replace(**changes) if changes else self

    @property
    def output_kill(self) -> int:
        """Bytes of one stream after which the run is killed (the excess is discarded)."""
        return self.output * OUTPUT_KILL_FACTOR

    def prlimit_args(self) -> list[str]:
        """``prlimit`` options for these limits (sizes in bytes: ``--as=4G`` would mean 4 B).

        ``open_files`` is the exception: the chain gets at least :data:`CHAIN_OPEN_FILES`, and
        the sandbox's pid 1 lowers the limit to ``open_files`` for the program.

        The CPU limit is ``soft:soft+1`` so a process first gets SIGXCPU (recognisable) and only
        a second later SIGKILL. ``--core=1`` turns core dumps off, including those piped to a
        host helper by ``kernel.core_pattern`` (the kernel refuses a pipe dump at limit 1).
        """
        return [
            f"--cpu={self.cpu_time}:{self.cpu_time + 1}",
            f"--as={self.memory}",
            f"--fsize={self.file_size}",
            f"--nofile={max(self.open_files, CHAIN_OPEN_FILES)}",
            f"--nproc={self.processes}",
            "--core=1",
        ]


#: Limits of a run step unless the caller gives others.
DEFAULT_LIMITS = Limits()

#: Limits of a compile step: compilers need more time and address space, but the same rest.
DEFAULT_COMPILE_LIMITS = Limits(wall_time=15.0, cpu_time=15, memory=1 * GiB, memory_total=2 * GiB)
