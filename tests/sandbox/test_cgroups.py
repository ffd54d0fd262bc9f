"""Finding and using memory cgroups, on a cgroupfs laid out in a temp dir.

The real thing is tested by the sandbox tests wherever this machine delegates a cgroup (root on
a cgroup-v1 host runs them through v1 slots). A cgroup-v2 host is not always at hand, so v2's
file protocol is checked here: which files are read and written, with which values.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.cgroups import Cgroups, RunStats, _membership, _mounts

V2_MOUNTINFO = (
    "25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
    "36 25 0:31 / {root} rw,nosuid,nodev shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
)
HYBRID_MOUNTINFO = (
    "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    "31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "32 25 0:28 / /sys/fs/cgroup/memory rw shared:5 - cgroup cgroup rw,memory\n"
)


def test_mounts_and_membership_are_parsed() -> None:
    assert _mounts(V2_MOUNTINFO.format(root="/sys/fs/cgroup")) == {"cgroup2": "/sys/fs/cgroup"}
    assert _mounts(HYBRID_MOUNTINFO) == {
        "cgroup2": "/sys/fs/cgroup/unified",
        "memory": "/sys/fs/cgroup/memory",
    }
    assert _membership("0::/system.slice/bot.service\n") == {"": "/system.slice/bot.service"}
    assert _membership("9:name=systemd:/\n4:memory,foo:/a/b\n0::/\n") == {
        "memory": "/a/b",
        "": "/",
    }


@pytest.fixture(autouse=True)
def files_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    """On cgroupfs a new cgroup comes with its control files; here a write creates them."""
    monkeypatch.setattr("sandbox.cgroups._write", lambda path, value: Path(path).write_text(value))


def fake_v2(tmp_path: Path, own: str = "/") -> tuple[Path, Path, Path]:
    """A cgroup2 tree at tmp_path/cg with this process in ``own``; the fake /proc files."""
    root = tmp_path / "cg"
    directory = root / own.lstrip("/")
    directory.mkdir(parents=True)
    (directory / "cgroup.controllers").write_text("cpu io memory pids\n")
    (directory / "cgroup.procs").write_text("")
    (directory / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(V2_MOUNTINFO.format(root=root))
    membership = tmp_path / "cgroup"
    membership.write_text(f"0::{own}\n")
    return directory, mountinfo, membership


def test_v2_delegation_moves_the_bot_into_a_leaf_and_enables_memory(tmp_path: Path) -> None:
    directory, mountinfo, membership = fake_v2(tmp_path)
    (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")
    stale = directory / "run-999999999-3"  # a dead bot's run (no such pid)
    stale.mkdir()

    found = Cgroups.discover(mountinfo=str(mountinfo), membership=str(membership))

    assert isinstance(found, Cgroups) and found.version == 2
    assert found.path == str(directory)
    assert (directory / "bot" / "cgroup.procs").read_text() == str(os.getpid())
    assert (directory / "cgroup.subtree_control").read_text() == "+memory"
    assert not stale.exists()
    assert found.accounts_sockets


def test_v2_run_cgroup_files(tmp_path: Path) -> None:
    directory, mountinfo, membership = fake_v2(tmp_path)
    found = Cgroups.discover(mountinfo=str(mountinfo), membership=str(membership))
    assert isinstance(found, Cgroups)

    run = found.create(256 << 20)

    path = Path(run.path)
    assert path.parent == directory and path.name.startswith(f"run-{os.getpid()}-")
    assert (path / "memory.max").read_text() == str(256 << 20)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "memory.oom.group").read_text() == "1"  # the whole run ends together
    assert run.spawner is None  # v2: the runner moves the sandbox in (--block-fd)
    run.admit(4242)
    assert (path / "cgroup.procs").read_text() == "4242"
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    (path / "memory.peak").write_text(str(200 << 20))
    assert run.stats() == RunStats(peak=200 << 20, oom_kills=1, cpu_time=1.5)
    assert run.oom_kills() == 1
    assert found.release(run, wait=False) is False  # a real cgroupfs would let rmdir go


def test_a_bot_restarted_in_its_leaf_uses_the_parent(tmp_path: Path) -> None:
    directory, mountinfo, membership = fake_v2(tmp_path, own="/bot")
    (directory.parent / "cgroup.subtree_control").write_text("memory pids\n")

    found = Cgroups.discover(mountinfo=str(mountinfo), membership=str(membership))

    assert isinstance(found, Cgroups) and found.path == str(directory.parent)


def test_a_cgroup_not_delegated_is_left_alone(tmp_path: Path) -> None:
    directory, mountinfo, membership = fake_v2(tmp_path, own="/user.slice/session-1.scope")
    (directory / "cgroup.procs").write_text("1\n2\n")
    if os.geteuid() != 0:
        os.chmod(directory, 0o555)  # not ours to write, as for a user without Delegate=yes

    found = Cgroups.discover(mountinfo=str(mountinfo), membership=str(membership))

    assert isinstance(found, str) and "is not delegated" in found
    assert (directory / "cgroup.procs").read_text() == "1\n2\n"  # nobody was moved
    assert not (directory / "bot").exists()


def test_no_memory_controller(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/\n")

    found = Cgroups.discover(mountinfo=str(mountinfo), membership=str(membership))

    assert found == "no cgroup hierarchy with the memory controller"
