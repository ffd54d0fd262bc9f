"""Resource limits of one sandboxed step (a compile or a run), and their defaults.

Every limit is enforced by the kernel or by the runner, never by the snippet's goodwill. Where
the host delegates a memory cgroup (see :mod:`sandbox.cgroups`) the kernel counts the run's
memory as a whole; elsewhere the *fallback* column applies:

============  ==========  =========================================================================
field         default     how it is enforced
============  ==========  =========================================================================
wall_time     5 s         the runner kills the whole process tree (compile: 15 s)
cpu_time      5 s         ``RLIMIT_CPU`` per process: SIGXCPU, then SIGKILL 1 s later
memory_total  1 GiB       all the run's memory as the kernel counts it - anonymous and tmpfs
                          pages, page tables, socket buffers, pipes, inodes and other kernel
                          objects - in the run's own memory cgroup: at the limit the kernel's OOM
                          killer ends the run (compile: 2 GiB). Fallback: resident memory of the
                          run's processes, summed every 50 ms by the runner, which kills the tree
                          above it
memory        512 MiB     fallback only: ``RLIMIT_AS`` per process, so a fast allocation fails at
                          once (node, java: 1 GiB; compile: 1 GiB, go, rust, tsc: 2 GiB). With a
                          cgroup there is no address-space limit: it breaks runtimes that reserve
                          much more than they use (numpy's BLAS threads, V8, the JVM)
file_size     16 MiB      ``RLIMIT_FSIZE``: largest file a process may write
open_files    64          ``RLIMIT_NOFILE`` of the program (set inside the sandbox)
processes     64          ``RLIMIT_NPROC``: processes *and threads*, set inside the sandbox's own
                          user namespace, so the kernel counts only this run's: not the bot's,
                          not another run's, whether the bot is root or not
output        64 KiB      bytes kept per stream (stdout, stderr); past 16x this the run is killed
disk          64 MiB      size of the private tmpfs holding ``/tmp`` and the work dir
inodes        16384       files, directories and links in ``/tmp`` and ``/dev/shm`` together,
                          counted every 50 ms by the runner (``statvfs``), which kills the tree
                          above it: each holds about 1 KiB of kernel memory that no size cap sees
============  ==========  =========================================================================

For comparison, piston's defaults are 3 s run, 10 s compile, 64 processes, 1 KiB output and no
memory limit. A toolchain may *raise* a limit it cannot start below (see
:attr:`sandbox.toolchains.Toolchain.minimums`); nothing ever lowers a limit the caller gave.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_COMPILE_LIMITS", "DEFAULT_LIMITS", "GiB", "KiB", "Limits", "MiB"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: A stream that produces this many times ``output`` bytes gets the run killed.
OUTPUT_KILL_FACTOR = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Hard limits of one sandboxed step; sizes in bytes, times in seconds.

    Values are checked on construction (:class:`ValueError` for a non-positive one), so a
    ``Limits`` that exists can be turned into rlimits as is.
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
    inodes: int = 16_384

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

    def prlimit_args(self, *, address_space: bool) -> list[str]:
        """The same as options of the ``prlimit`` program (sizes in bytes: ``--as=4G`` would
        mean 4 B), for a chain that sets them inside the sandbox itself."""
        names = {
            resource.RLIMIT_CPU: "cpu", resource.RLIMIT_FSIZE: "fsize",
            resource.RLIMIT_NOFILE: "nofile", resource.RLIMIT_NPROC: "nproc",
            resource.RLIMIT_CORE: "core", resource.RLIMIT_AS: "as",
        }  # fmt: skip
        return [
            f"--{names[which]}={soft}:{hard}"
            for which, (soft, hard) in self.rlimits(address_space=address_space)
        ]

    def rlimits(self, *, address_space: bool) -> list[tuple[int, tuple[int, int]]]:
        """``(resource, (soft, hard))`` pairs for these limits, for ``prlimit(2)``.

        They apply inside the sandbox's own user namespace, so ``RLIMIT_NPROC`` counts that
        namespace's processes (see the module doc), and after bwrap copied the files in with
        the descriptors it needed: the runner sets them on the sandbox's pid 1 while bwrap holds
        it, before it starts the program - or, for a run under another uid (which needs
        ``CAP_SYS_RESOURCE``, missing in containers), ``prlimit`` does inside.
        ``address_space``: also set ``RLIMIT_AS`` to ``memory`` (the fallback, where no cgroup
        counts the run's memory).

        The CPU limit is soft+1 hard so a process first gets SIGXCPU (recognisable) and only a
        second later SIGKILL. A core limit of 1 byte turns core dumps off, including those piped
        to a host helper by ``kernel.core_pattern`` (the kernel refuses a pipe dump at limit 1).
        """
        pairs = [
            (resource.RLIMIT_CPU, (self.cpu_time, self.cpu_time + 1)),
            (resource.RLIMIT_FSIZE, (self.file_size, self.file_size)),
            (resource.RLIMIT_NOFILE, (self.open_files, self.open_files)),
            (resource.RLIMIT_NPROC, (self.processes, self.processes)),
            (resource.RLIMIT_CORE, (1, 1)),
        ]
        if address_space:
            pairs.append((resource.RLIMIT_AS, (self.memory, self.memory)))
        return pairs


#: Limits of a run step unless the caller gives others.
DEFAULT_LIMITS = Limits()

#: Limits of a compile step: compilers need more time and address space, but the same rest.
DEFAULT_COMPILE_LIMITS = Limits(wall_time=15.0, cpu_time=15, memory=1 * GiB, memory_total=2 * GiB)
