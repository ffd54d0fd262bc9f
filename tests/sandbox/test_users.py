"""Uid leases: exclusive within a process and across processes, released on exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sandbox.users import Users, lock_dir

# Leases are host-wide: a range of this process's own, so that two test runs on one machine
# (which lock the same files) do not take each other's uids.
_BASE = 480_000 + 3 * (os.getpid() % 10_000)
UIDS = range(_BASE, _BASE + 3)


async def test_leases_are_exclusive_and_released() -> None:
    first, second = Users(UIDS), Users(UIDS)

    async with first.lease() as a, second.lease() as b, first.lease() as c:
        assert sorted([a, b, c]) == list(UIDS)  # type: ignore[type-var]
    async with second.lease() as again:
        assert again == UIDS[0]


@pytest.fixture
def held_elsewhere() -> Iterator[int]:
    """Another process holding the lock of UIDS[0] until the test ends."""
    path = os.path.join(lock_dir(), f"{UIDS[0]}.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({path!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield UIDS[0]
    holder.communicate("")


async def test_a_uid_held_by_another_process_is_skipped(held_elsewhere: int) -> None:
    async with Users(UIDS).lease() as uid:
        assert uid == UIDS[1]


async def test_a_lock_is_dropped_when_its_holder_ends() -> None:
    async with Users(UIDS).lease() as uid:
        assert uid == UIDS[0]


def test_lock_dir_is_private() -> None:
    info = os.stat(lock_dir())
    assert info.st_uid == os.geteuid()
    assert info.st_mode & 0o777 == 0o700


def test_no_switch_and_bad_ranges() -> None:
    with pytest.raises(ValueError, match="never root"):
        Users([0, 1])
    with pytest.raises(ValueError, match="empty"):
        Users([])
