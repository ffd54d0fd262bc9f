"""The unprivileged users sandboxed runs execute as: one reserved uid per simultaneous run.

When the bot runs as root, every run gets a uid of its own from a reserved range (by default
:data:`DEFAULT_UIDS`, 470000-470063, inside the span 65536-524287 that systemd leaves to other
software; no file on the host belongs to them). One uid per run means that a run owns no file
and no process of another, that per-user kernel counters (pipe buffers, in-flight descriptors)
are its own, and that the runner can kill "every process of this uid" afterwards without
touching anything else.

A lease is exclusive on the host, across processes (pytest workers, a second bot): each uid is
also held with ``flock`` on a file in a root-only directory (``/run/codethread-sandbox``, or
under the temp dir where ``/run`` is not writable). The kernel drops a lock when its holder
dies, so a crashed process leaves nothing locked.

When the bot is not root it cannot switch users: runs execute as the bot's own uid inside their
user namespace. The process limit is not shared either way: it is set inside each run's own
user namespace, where the kernel counts only that run's processes (see :mod:`sandbox.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

__all__ = ["DEFAULT_UIDS", "Users", "lock_dir"]

DEFAULT_UIDS: Sequence[int] = range(470_000, 470_064)

_leased: dict[int, int] = {}  # uid -> descriptor holding its flock
_lock = threading.Lock()


def lock_dir() -> str:
    """The directory of the uid lock files: created 0700, and refused unless ours and private."""
    candidates = ["/run/codethread-sandbox"]
    candidates.append(os.path.join(tempfile.gettempdir(), f"codethread-sandbox-{os.geteuid()}"))
    problems = []
    for path in candidates:
        with contextlib.suppress(FileExistsError, PermissionError, FileNotFoundError):
            os.mkdir(path, 0o700)
        try:
            info = os.lstat(path)
        except OSError as error:
            problems.append(f"{path}: {error.strerror}")
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077:
            return path
        problems.append(f"{path}: not a directory of ours with mode 0700")
    raise PermissionError("No safe directory for sandbox uid locks (" + "; ".join(problems) + ")")


class Users:
    """Hands out uids from ``uids``, or None for every run when ``uids`` is None (no switch)."""

    def __init__(self, uids: Sequence[int] | None) -> None:
        if uids is not None:
            if not uids:
                raise ValueError("uids must not be empty")
            if any(uid <= 0 for uid in uids):
                raise ValueError("uids must be positive (never root)")
        self.uids = uids
        self._dir: str | None = None

    def __repr__(self) -> str:
        return f"Users({self.uids!r})"

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[int | None]:
        """A uid no other run on this host is using, released on exit.

        Raises :class:`PermissionError` if no safe lock directory can be made.
        """
        if self.uids is None:
            yield None
            return
        if self._dir is None:
            self._dir = lock_dir()
        uid = self._take(self._dir)
        while uid is None:  # every uid busy: only when callers bypass the pool
            await asyncio.sleep(0.01)
            uid = self._take(self._dir)
        try:
            yield uid
        finally:
            with _lock:
                os.close(_leased.pop(uid))  # closing drops the flock

    def _take(self, directory: str) -> int | None:
        assert self.uids is not None
        with _lock:
            for uid in self.uids:
                if uid in _leased:
                    continue
                fd = os.open(
                    os.path.join(directory, f"{uid}.lock"),
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                _leased[uid] = fd
                return uid
        return None
