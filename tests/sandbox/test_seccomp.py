"""The seccomp filter's shape (its effect is tested inside a sandbox in test_escapes)."""

from __future__ import annotations

import struct

from sandbox.seccomp import BLOCKED, build_filter


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def test_x86_64_filter_checks_the_arch_then_each_blocked_syscall() -> None:
    program = build_filter("x86_64")

    assert program is not None
    code = instructions(program)
    assert code[0] == (0x20, 0, 0, 4)  # load arch
    assert code[1] == (0x15, 1, 0, 0xC000003E)  # x86_64, else
    assert code[2] == (0x06, 0, 0, 0x80000000)  # kill the process
    assert code[3] == (0x20, 0, 0, 0)  # load the syscall number
    assert code[4][0] == 0x35 and code[4][3] == 0x40000000  # x32 numbers are refused
    checks = code[5:-2]
    assert [k for _, _, _, k in checks][:2] == [29, 68]  # shmget, msgget
    assert len(checks) == len(BLOCKED)
    assert code[-2] == (0x06, 0, 0, 0x7FFF0000)  # allow
    assert code[-1] == (0x06, 0, 0, 0x00050000 | 38)  # ENOSYS
    # every jump lands on the final ENOSYS instruction
    for index, (_, jt, _, _) in enumerate(code[4:-2], start=4):
        assert index + 1 + jt == len(code) - 1


def test_aarch64_and_unknown_architectures() -> None:
    arm = build_filter("aarch64")
    assert arm is not None and instructions(arm)[1][3] == 0xC00000B7
    assert build_filter("arm64") == arm
    assert build_filter("riscv64") is None
