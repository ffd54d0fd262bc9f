"""Limits: validation, rlimits in bytes, raising to a runtime's minimum."""

from __future__ import annotations

import resource

import pytest

from sandbox import DEFAULT_COMPILE_LIMITS, DEFAULT_LIMITS, Limits
from sandbox.limits import GiB, KiB, MiB


def test_defaults() -> None:
    expected = Limits(
        wall_time=5.0, cpu_time=5, memory=512 * MiB, memory_total=1 * GiB, file_size=16 * MiB,
        open_files=64, processes=64, output=64 * KiB, disk=64 * MiB, inodes=16384,
    )  # fmt: skip
    assert expected == DEFAULT_LIMITS
    assert DEFAULT_COMPILE_LIMITS.wall_time == 15.0
    assert DEFAULT_COMPILE_LIMITS.memory == 1 * GiB


def test_rlimits_are_bytes_and_cpu_has_a_grace_second() -> None:
    limits = Limits(memory=4 * GiB, cpu_time=3)
    pairs = dict(limits.rlimits(address_space=True))

    assert pairs[resource.RLIMIT_AS] == (4 * GiB, 4 * GiB)
    assert pairs[resource.RLIMIT_CPU] == (3, 4)
    assert pairs[resource.RLIMIT_NPROC] == (64, 64)
    assert pairs[resource.RLIMIT_FSIZE] == (16 * MiB, 16 * MiB)
    assert pairs[resource.RLIMIT_NOFILE] == (64, 64)  # the program's own; bwrap had more
    assert pairs[resource.RLIMIT_CORE] == (1, 1)
    # with a memory cgroup, no address-space limit (it breaks numpy's BLAS, V8, the JVM)
    assert resource.RLIMIT_AS not in dict(limits.rlimits(address_space=False))


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
