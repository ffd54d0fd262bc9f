"""No zombie is left when the bot is the reaper of the sandbox's pid 1 (PID 1 in a container).

The conftest makes this pytest process a child subreaper: like a bot that is PID 1, it is
handed every orphan of its descendants, so each sandbox's pid 1 (orphaned when bwrap exits)
comes back to it. Without :func:`sandbox.reaper.reap` each run would leave a zombie here, and
zombies count against the process limit until nothing starts.
"""

from __future__ import annotations

import os
import select
import subprocess

import pytest

from sandbox import Limits, Sandbox
from sandbox.reaper import reap


def zombie_children() -> set[int]:
    """Pids of this process's children that are zombies."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == os.getpid():
            found.add(int(name))
    return found


def reap_all(pids: set[int]) -> None:
    for pid in pids:
        os.waitpid(pid, 0)


async def runs_that_end_every_way(sandbox: Sandbox) -> None:
    for _ in range(3):
        killed = await sandbox.run("bash", "sleep 10 & sleep 10", limits=Limits(wall_time=0.3))
        assert killed.limit_hit == "wall_time", killed
        done = await sandbox.run("python", "print(1)")
        assert done.status == "ok", done


async def test_killed_and_finished_runs_leave_no_zombie(sandbox: Sandbox) -> None:
    before = zombie_children()

    await runs_that_end_every_way(sandbox)

    assert zombie_children() - before == set()


async def test_without_the_reaper_they_would(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is not vacuous: here each run's pid 1 does come back to this process."""
    monkeypatch.setattr("sandbox.process.reap", lambda pidfd: False)
    before = zombie_children()

    await runs_that_end_every_way(sandbox)

    left = zombie_children() - before
    reap_all(left)  # clean up what the test made
    assert len(left) == 6


def test_reap_takes_only_its_own_child() -> None:
    child = subprocess.Popen(["true"])
    pidfd = os.pidfd_open(child.pid)
    try:
        select.select([pidfd], [], [], 5)  # readable once it has exited

        assert reap(pidfd) is True
        assert child.pid not in zombie_children()
    finally:
        os.close(pidfd)
    child.wait()  # the Popen object copes with a child reaped behind its back
    foreign = os.pidfd_open(1)
    try:
        assert reap(foreign) is False  # not our child: never waited for
    finally:
        os.close(foreign)
