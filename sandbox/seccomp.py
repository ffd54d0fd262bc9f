"""A small seccomp filter for bwrap's ``--seccomp FD``: a classic-BPF program, built in Python.

The namespaces and limits already contain a snippet; this filter closes what they do not
bound or what only widens the kernel's attack surface:

- SysV shared memory, message queues and semaphores (``shmget``, ``msgget``, ``semget``):
  kernel memory that outlives the process that touched it and that no rlimit bounds;
- ``memfd_create`` / ``memfd_secret``: anonymous files outside the size-capped tmpfs;
- ``io_uring_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``keyctl``, ``add_key``,
  ``request_key``: kernel interfaces no snippet needs and a common source of exploits.

They fail with ``ENOSYS`` ("not supported"), which runtimes treat as a reason to fall back
(libuv drops io_uring, for instance).

Socket families: ``socket`` and ``socketpair`` succeed only for what a snippet needs, and fail
with ``EAFNOSUPPORT`` for everything else (``AF_NETLINK``, ``AF_PACKET``, ``AF_VSOCK`` - which
the network namespace does not stop: it reaches the host VM -, ``AF_ALG``, ``AF_BLUETOOTH``,
``AF_XDP``…):

- ``AF_UNIX`` always: local IPC (asyncio's self-pipe, ``multiprocessing``, libuv's pipes);
- ``AF_INET`` and ``AF_INET6`` only when ``accounted`` - the run's memory cgroup counts socket
  buffers, TCP's included. Inside the sandbox they reach only its own loopback (a server and its
  client in one snippet work); without a cgroup, a loopback TCP socket could grow its buffers to
  megabytes that nothing bounds per run, so the families are refused.

Without a cgroup (``accounted`` False) the filter also stops the two ways a process inflates
kernel buffers beyond their defaults, so that the process and open-file limits bound them:
``setsockopt(SOL_SOCKET, SO_SNDBUF/SO_RCVBUF[FORCE])`` and ``fcntl(F_SETPIPE_SZ)`` fail with
``EPERM`` (a socket then holds at most ``net.core.wmem_default``, about 208 KiB; a pipe 64 KiB).

Any other ABI (32-bit x86 ``int 0x80``) kills the process; x32 syscall numbers fail with
``ENOSYS``. Supported architectures: x86_64 and aarch64; :func:`build_filter` returns None
elsewhere, and the runner then runs without a filter (the other layers still hold).
"""

from __future__ import annotations

import errno
import platform
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BLOCKED", "build_filter"]

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
_NR_OFFSET = 0
_ARCH_OFFSET = 4


def _arg(index: int) -> int:
    """Offset of the low 32 bits of syscall argument ``index`` (both arches are little-endian)."""
    return 16 + 8 * index


_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_X32_SYSCALL_BIT = 0x40000000

_SOL_SOCKET = 1
_SO_SNDBUF, _SO_RCVBUF, _SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 7, 8, 32, 33  # asm-generic, x86 too
_F_SETPIPE_SZ = 1031

#: name -> (audit arch, {syscall name: number})
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "shmget": 29, "msgget": 68, "semget": 64, "memfd_create": 319, "memfd_secret": 447,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
            "keyctl": 250, "add_key": 248, "request_key": 249,
            "socket": 41, "socketpair": 53, "setsockopt": 54, "fcntl": 72,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "shmget": 194, "msgget": 186, "semget": 190, "memfd_create": 279, "memfd_secret": 447,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
            "keyctl": 219, "add_key": 217, "request_key": 218,
            "socket": 198, "socketpair": 199, "setsockopt": 208, "fcntl": 25,
        },
    ),
}  # fmt: skip

#: The syscalls the filter refuses with ENOSYS.
BLOCKED: tuple[str, ...] = (
    "shmget", "msgget", "semget", "memfd_create", "memfd_secret",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Insn:
    """One instruction; a jump names its targets by label, resolved by :func:`_assemble`."""

    code: int
    k: int
    jt: str | None = None
    jf: str | None = None


def _assemble(program: Sequence[_Insn | str]) -> bytes:
    """``struct sock_filter`` bytes of ``program``: instructions and label strings before them.

    Classic BPF only jumps forward, at most 255 instructions; both are checked.
    """
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for index, insn in enumerate(insns):

        def offset(label: str | None, index: int = index) -> int:
            if label is None:
                return 0
            distance = labels[label] - index - 1
            if not 0 <= distance <= 255:
                raise ValueError(f"seccomp jump to {label!r} out of range")
            return distance

        out.append(struct.pack("=HBBI", insn.code, offset(insn.jt), offset(insn.jf), insn.k))
    return b"".join(out)


def _ret(value: int) -> _Insn:
    return _Insn(_RET_K, value)


def _load(offset: int) -> _Insn:
    return _Insn(_LD_W_ABS, offset)


def _if(value: int, then: str) -> _Insn:
    """Jump to ``then`` if the accumulator equals ``value``, else fall through."""
    return _Insn(_JEQ_K, value, jt=then)


def build_filter(machine: str | None = None, *, accounted: bool = False) -> bytes | None:
    """The filter program (``struct sock_filter`` array) for ``machine`` (default: this one).

    ``accounted``: the run's memory cgroup counts kernel memory (see the module doc). None when
    the architecture is not one this module knows.
    """
    name = machine or platform.machine()
    if name == "arm64":
        name = "aarch64"
    if name not in _ARCHES:
        return None
    audit_arch, numbers = _ARCHES[name]
    program: list[_Insn | str] = [
        _load(_ARCH_OFFSET),
        _Insn(_JEQ_K, audit_arch, jf="kill"),
        _load(_NR_OFFSET),
    ]
    if name == "x86_64":
        program.append(_Insn(_JGE_K, _X32_SYSCALL_BIT, jt="enosys"))
    program += [_if(numbers[syscall], "enosys") for syscall in BLOCKED]
    program += [_if(numbers["socket"], "family"), _if(numbers["socketpair"], "family")]
    if not accounted:
        program += [_if(numbers["setsockopt"], "sockopt"), _if(numbers["fcntl"], "fcntl")]
    program.append(_ret(_RET_ALLOW))

    families = [socket.AF_UNIX] + ([socket.AF_INET, socket.AF_INET6] if accounted else [])
    program += ["family", _load(_arg(0))]
    program += [_if(int(family), "allow") for family in families]
    program.append(_ret(_RET_ERRNO | errno.EAFNOSUPPORT))
    if not accounted:
        program += ["sockopt", _load(_arg(1)), _Insn(_JEQ_K, _SOL_SOCKET, jf="allow")]
        program += [_load(_arg(2))]
        program += [
            _if(option, "eperm")
            for option in (_SO_SNDBUF, _SO_RCVBUF, _SO_SNDBUFFORCE, _SO_RCVBUFFORCE)
        ]
        program.append(_ret(_RET_ALLOW))
        program += ["fcntl", _load(_arg(1)), _if(_F_SETPIPE_SZ, "eperm"), _ret(_RET_ALLOW)]
        program += ["eperm", _ret(_RET_ERRNO | errno.EPERM)]
    program += ["allow", _ret(_RET_ALLOW)]
    program += ["enosys", _ret(_RET_ERRNO | errno.ENOSYS)]
    program += ["kill", _ret(_RET_KILL_PROCESS)]
    return _assemble(program)
