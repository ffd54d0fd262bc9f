"""The seccomp filter's shape (its effect is tested inside a sandbox in test_escapes)."""

from __future__ import annotations

import errno
import struct

import pytest

from sandbox.seccomp import BLOCKED, build_filter


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def run(program: bytes, nr: int, *args: int, arch: int = 0xC000003E) -> int:
    """What the filter returns for syscall ``nr`` with ``args``: a tiny classic-BPF interpreter
    for the four instructions the filter uses."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    code = instructions(program)
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif op in (0x15, 0x35):
            taken = acc == k if op == 0x15 else acc >= k
            pc += jt if taken else jf
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
        pc += 1


ALLOW, KILL = 0x7FFF0000, 0x80000000


def errno_of(value: int) -> int:
    assert value & 0xFFFF0000 == 0x00050000, hex(value)
    return value & 0xFFFF


def test_the_arch_is_checked_first_and_a_foreign_abi_is_killed() -> None:
    program = build_filter("x86_64")

    assert program is not None
    assert instructions(program)[:2] == [
        (0x20, 0, 0, 4),
        (0x15, 0, len(program) // 8 - 3, 0xC000003E),
    ]
    assert run(program, 39, arch=0x40000003) == KILL  # i386 getpid
    assert errno_of(run(program, 0x40000000 + 39)) == errno.ENOSYS  # x32 numbers
    assert run(program, 39) == ALLOW  # getpid


@pytest.mark.parametrize("accounted", [False, True])
def test_blocked_syscalls_fail_with_enosys(accounted: bool) -> None:
    program = build_filter("x86_64", accounted=accounted)
    assert program is not None

    for number in (29, 68, 64, 319, 425, 321, 298, 323, 250):  # shmget … keyctl
        assert errno_of(run(program, number)) == errno.ENOSYS
    assert len(BLOCKED) == 14


@pytest.mark.parametrize(("family", "fallback", "accounted"), [
    (1, ALLOW, ALLOW),  # AF_UNIX
    (2, errno.EAFNOSUPPORT, ALLOW),  # AF_INET
    (10, errno.EAFNOSUPPORT, ALLOW),  # AF_INET6
    (16, errno.EAFNOSUPPORT, errno.EAFNOSUPPORT),  # AF_NETLINK
    (17, errno.EAFNOSUPPORT, errno.EAFNOSUPPORT),  # AF_PACKET
    (40, errno.EAFNOSUPPORT, errno.EAFNOSUPPORT),  # AF_VSOCK
    (38, errno.EAFNOSUPPORT, errno.EAFNOSUPPORT),  # AF_ALG
])  # fmt: skip
def test_socket_families(family: int, fallback: int, accounted: int) -> None:
    for flag, expected in ((False, fallback), (True, accounted)):
        program = build_filter("x86_64", accounted=flag)
        assert program is not None
        for nr in (41, 53):  # socket, socketpair
            got = run(program, nr, family, 1, 0)
            assert (got if expected == ALLOW else errno_of(got)) == expected, (family, flag, nr)


def test_buffer_growth_is_refused_only_without_a_cgroup() -> None:
    fallback, accounted = build_filter("x86_64"), build_filter("x86_64", accounted=True)
    assert fallback is not None and accounted is not None

    for option in (7, 8, 32, 33):  # SO_SNDBUF, SO_RCVBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE
        assert errno_of(run(fallback, 54, 3, 1, option)) == errno.EPERM
        assert run(accounted, 54, 3, 1, option) == ALLOW
    assert run(fallback, 54, 3, 1, 2) == ALLOW  # SO_REUSEADDR
    assert run(fallback, 54, 3, 6, 7) == ALLOW  # another level, same number
    assert errno_of(run(fallback, 72, 3, 1031)) == errno.EPERM  # F_SETPIPE_SZ
    assert run(fallback, 72, 3, 1) == ALLOW  # F_GETFD
    assert run(accounted, 72, 3, 1031) == ALLOW


def test_aarch64_and_unknown_architectures() -> None:
    arm = build_filter("aarch64")
    assert arm is not None and instructions(arm)[1][3] == 0xC00000B7
    assert errno_of(run(arm, 198, 40, 1, 0, arch=0xC00000B7)) == errno.EAFNOSUPPORT
    assert run(arm, 198, 1, 1, 0, arch=0xC00000B7) == ALLOW
    assert build_filter("arm64") == arm
    assert build_filter("riscv64") is None
