"""Limits: validation, prlimit arguments in bytes, raising to a runtime's minimum."""

from __future__ import annotations

import pytest

from sandbox import DEFAULT_COMPILE_LIMITS, DEFAULT_LIMITS, Limits
from sandbox.limits import GiB, KiB, MiB


def test_defaults() -> None:
    expected = Limits(
        wall_time=5.0, cpu_time=5, memory=512 * MiB, memory_total=1 * GiB, file_size=16 * MiB,
        open_files=64, processes=64, output=64 * KiB, disk=64 * MiB,
    )  # fmt: skip
    assert expected == DEFAULT_LIMITS
    assert DEFAULT_COMPILE_LIMITS.wall_time == 15.0
    assert DEFAULT_COMPILE_LIMITS.memory == 1 * GiB


def test_prlimit_arguments_are_bytes_and_cpu_has_a_grace_second() -> None:
    args = Limits(memory=4 * GiB, cpu_time=3).prlimit_args()

    assert "--as=4294967296" in args  # never "4G": prlimit would read 4 bytes
    assert "--cpu=3:4" in args
    assert "--nproc=64" in args and "--fsize=16777216" in args
    assert "--nofile=256" in args  # the chain's; the sandbox's pid 1 sets 64 for the program
    assert "--core=1" in args


@pytest.mark.parametrize("change", [
    {"wall_time": 0}, {"cpu_time": -1}, {"memory": 0}, {"output": True}, {"open_files": 3},
    {"processes": "64"},
])  # fmt: skip
def test_invalid_limits_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"Limits\."):
        Limits(**change)  # type: ignore[arg-type]


def test_raised_to_only_raises() -> None:
    small = Limits(memory=128 * MiB, processes=8)

    raised = small.raised_to({"memory": 1 * GiB, "processes": 4})

    assert raised.memory == 1 * GiB
    assert raised.processes == 8
    assert small.raised_to({}) is small
    assert Limits().output_kill == 16 * 64 * KiB
