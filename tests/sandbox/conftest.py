"""Fixtures for the sandbox tests: one probed Sandbox, and a way to look at this run's processes.

Tests that start a sandbox depend on ``sandbox``, which skips them (with bwrap's own reason)
where bwrap is missing or cannot create namespaces. With ``CODETHREAD_REQUIRE_SANDBOX=1`` (set
it in CI, which installs bwrap) that is a failure instead of a skip. ``sandbox`` counts memory
in a cgroup where this machine delegates one (root on a cgroup-v1 host, a delegated v2 cgroup);
``fallback_sandbox`` never does, and ``each_sandbox`` is both in turn (a test of the cgroup
case skips where there is none), so both accountings are tested wherever they can be.

Leftover checks look only at processes this pytest process started (its descendants), so two
test runs, or a bot, sharing the machine never fail each other's checks. For that to catch a
process that outlived its parents, pytest makes itself a child subreaper (``prctl``): an
orphan is then re-parented to pytest, not to the host's init, and stays a descendant.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Sandbox
from sandbox.users import DEFAULT_UIDS

_SANDBOX = Sandbox()
_FALLBACK = Sandbox(cgroups=None)
_REASON: list[str | None] = []


def sandbox_reason() -> str | None:
    """Why sandboxed runs are impossible here (None: they work); probed once per session."""
    if not _REASON:
        _REASON.append(asyncio.run(_SANDBOX.check()))
    return _REASON[0]


@pytest.fixture
def sandbox() -> Sandbox:
    reason = sandbox_reason()
    if reason is not None:
        if os.environ.get("CODETHREAD_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"CODETHREAD_REQUIRE_SANDBOX=1 but: {reason}")
        pytest.skip(reason)
    return _SANDBOX


@pytest.fixture
def fallback_sandbox(sandbox: Sandbox) -> Sandbox:
    """A sandbox without memory cgroups: the fallback limits of sandbox.limits."""
    assert asyncio.run(_FALLBACK.check()) is None
    return _FALLBACK


@pytest.fixture(params=["cgroup", "fallback"])
def each_sandbox(request: pytest.FixtureRequest, sandbox: Sandbox) -> Sandbox:
    """The cgroup-accounted sandbox, then the fallback one (skipped where no cgroup is)."""
    if request.param == "fallback":
        assert asyncio.run(_FALLBACK.check()) is None
        return _FALLBACK
    if sandbox.cgroups is None:
        pytest.skip(f"no memory cgroup here: {sandbox.fallback_reason}")
    return sandbox


PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


@pytest.fixture(scope="session", autouse=True)
def adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (see the module doc).

    Orphans that exit stay zombies of pytest until it ends; ``sandbox_processes`` skips them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def descendants(root: int) -> set[int]:
    """The pids of ``root``'s descendants (children, theirs, and so on; zombies too)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                ppid = int(file.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def sandbox_processes() -> list[tuple[int, int, str]]:
    """(pid, real uid, command line) of live processes of sandboxed runs this test run started.

    Only descendants of this pytest process count (others belong to another test run or bot).
    Of those, as root: any process of a reserved sandbox uid. Otherwise runs share our uid,
    so: any process in a pid namespace other than ours (only sandboxes make those here).
    """
    own_ns = os.readlink("/proc/self/ns/pid")
    found = []
    for pid in sorted(descendants(os.getpid())):
        name = str(pid)
        try:
            with open(f"/proc/{name}/status") as file:
                status = file.read()
            uid = int(status.split("\nUid:")[1].split()[0])
            state = status.split("\nState:")[1].split()[0]
            if state in ("Z", "X"):
                continue
            if os.geteuid() == 0:
                if uid not in DEFAULT_UIDS:
                    continue
            elif uid != os.getuid() or os.readlink(f"/proc/{name}/ns/pid") == own_ns:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append((pid, uid, cmdline))
    return found


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A fresh directory under /tmp that other users may enter (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="codethread-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail the test if a sandboxed process of this test run is alive after it (or before)."""
    assert sandbox_processes() == []
    yield
    assert sandbox_processes() == []
