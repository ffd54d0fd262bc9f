"""Fixtures for the sandbox tests: one probed Sandbox, and a way to look at the host's processes.

Tests that start a sandbox depend on ``sandbox``, which skips them (with bwrap's own reason)
where bwrap is missing or cannot create namespaces. With ``CODETHREAD_REQUIRE_SANDBOX=1`` (set
it in CI, which installs bwrap) that is a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Sandbox
from sandbox.users import DEFAULT_UIDS

_SANDBOX = Sandbox()
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


def sandbox_processes() -> list[tuple[int, int, str]]:
    """(pid, real uid, command line) of host processes that belong to sandboxed runs.

    As root: any process of a reserved sandbox uid. Otherwise runs share our uid, so: any
    process that is in a pid namespace other than ours (only sandboxes make those here).
    """
    own_ns = os.readlink("/proc/self/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
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
        found.append((int(name), uid, cmdline))
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
    """Fail the test if any sandboxed process is alive after it (and none may be before)."""
    assert sandbox_processes() == []
    yield
    assert sandbox_processes() == []
