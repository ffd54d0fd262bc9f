"""A small seccomp filter for bwrap's ``--seccomp FD``: a classic-BPF program, built in Python.

The namespaces and limits already contain a snippet; this filter closes what they do not
bound or what only widens the kernel's attack surface:

- SysV shared memory and message queues (``shmget``, ``msgget``): memory that outlives the
  process that touched it and counts towards no ``RLIMIT_AS``;
- ``memfd_create`` / ``memfd_secret``: anonymous files outside the size-capped tmpfs;
- ``io_uring_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``keyctl``, ``add_key``,
  ``request_key``: kernel interfaces no snippet needs and a common source of exploits.

They fail with ``ENOSYS`` ("not supported"), which runtimes treat as a reason to fall back
(libuv drops io_uring, for instance). Any other ABI (32-bit x86 ``int 0x80``, x32 syscall
numbers) kills the process. Supported architectures: x86_64 and aarch64;
:func:`build_filter` returns None elsewhere, and the runner then runs without a filter (the
other layers still hold).
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["BLOCKED", "build_filter"]

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
_NR_OFFSET = 0
_ARCH_OFFSET = 4

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_X32_SYSCALL_BIT = 0x40000000

#: name -> (audit arch, {syscall name: number})
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "shmget": 29, "msgget": 68, "memfd_create": 319, "memfd_secret": 447,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
            "keyctl": 250, "add_key": 248, "request_key": 249,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "shmget": 194, "msgget": 186, "memfd_create": 279, "memfd_secret": 447,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
            "keyctl": 219, "add_key": 217, "request_key": 218,
        },
    ),
}  # fmt: skip

#: The syscalls the filter refuses with ENOSYS.
BLOCKED: tuple[str, ...] = tuple(_ARCHES["x86_64"][1])


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The filter program (``struct sock_filter`` array) for ``machine`` (default: this one).

    None when the architecture is not one this module knows.
    """
    name = machine or platform.machine()
    if name == "arm64":
        name = "aarch64"
    if name not in _ARCHES:
        return None
    audit_arch, numbers = _ARCHES[name]
    blocked = [numbers[syscall] for syscall in BLOCKED]
    deny = _insn(_RET_K, _RET_ERRNO | errno.ENOSYS)

    body = [_insn(_LD_W_ABS, _NR_OFFSET)]
    # Each check jumps forward over the remaining checks and the ALLOW to the shared deny.
    checks = [(_JGE_K, _X32_SYSCALL_BIT)] if name == "x86_64" else []
    checks += [(_JEQ_K, number) for number in blocked]
    for index, (code, k) in enumerate(checks):
        remaining = len(checks) - index - 1
        body.append(_insn(code, k, jt=remaining + 1, jf=0))
    body.append(_insn(_RET_K, _RET_ALLOW))
    body.append(deny)

    head = [
        _insn(_LD_W_ABS, _ARCH_OFFSET),
        _insn(_JEQ_K, audit_arch, jt=1, jf=0),
        _insn(_RET_K, _RET_KILL_PROCESS),
    ]
    return b"".join(head + body)
