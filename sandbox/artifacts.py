"""The files a run makes: kept from the sandbox's work dir after the sandbox is gone.

A snippet that draws ``plot.png`` or writes ``out/result.csv`` made something worth returning,
but its work dir lives on the sandbox's private tmpfs (``/tmp``), which disappears with the
sandbox's mount namespace when the program exits. So the runner keeps it: while bwrap holds the
sandbox's pid 1 before the program starts (``--block-fd``, see :mod:`sandbox.process`), a
:class:`WorkDir` opens the work dir from the host through ``/proc/PID/root/tmp/work``. When the
namespace dies its mounts are detached, but the open directory stays readable, so once the
whole sandbox has exited (nothing of the run is left to change a file while it is read)
:meth:`WorkDir.collect` reads what the run made and closes it, which frees the tmpfs.

What counts as an :class:`Artifact`:

- a regular file in the work dir or up to :data:`MAX_DEPTH` directories below it, that is not
  one of the run's inputs (the snippet, its extra files, a compiler's output copied in);
- never a symlink, FIFO, socket or device: the type is taken without following links, and each
  file is opened with ``O_NOFOLLOW | O_NONBLOCK`` (every directory on its path too) and checked
  to be a regular file before a byte is read;
- no path part that starts with ``.`` (``HOME`` is the work dir, so ``~/.config`` and
  ``~/.cache`` land there), nor ``__pycache__`` or ``node_modules``, nor a name that is not
  printable UTF-8;
- at most :data:`MAX_ARTIFACTS` files and :data:`MAX_ARTIFACT_BYTES` in all, taken in name
  order: a file past the count, or one larger than what is left of the budget, is counted in
  :attr:`Collected.left` and not read.

Where the work dir cannot be opened (the sandbox never got ready within
:data:`READY_TIMEOUT`, or ``/proc`` refused) the run goes on without artifacts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import stat
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

from sandbox.limits import MiB

__all__ = [
    "MAX_ARTIFACTS",
    "MAX_ARTIFACT_BYTES",
    "MAX_DEPTH",
    "Artifact",
    "Collected",
    "WorkDir",
    "collect",
]

#: Most files one run returns.
MAX_ARTIFACTS = 8
#: Most bytes one run returns, all its files together.
MAX_ARTIFACT_BYTES = 8 * MiB
#: How many directory levels below the work dir are searched (``a/b/c/file`` at most).
MAX_DEPTH = 3
#: Directories that hold caches, not results.
SKIPPED = frozenset({"__pycache__", "node_modules"})
#: Longest wait for bwrap to finish setting up the sandbox before the work dir is opened.
READY_TIMEOUT = 2.0
READY_POLL = 0.0002  # seconds between looks

_GLANCE = 16  # entries WorkDir.nothing_made looks at
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Artifact:
    """A file the run made: ``name`` relative to the work dir (``plot.png``, ``out/a.csv``)."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r}, size={self.size})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Collected:
    """What :func:`collect` found: the files kept, and how many more there were."""

    artifacts: tuple[Artifact, ...] = ()
    left: int = 0  # files past MAX_ARTIFACTS or MAX_ARTIFACT_BYTES, not kept


class WorkDir:
    """The sandbox's work dir, held open from the host so that it outlives the sandbox.

    :meth:`hold` opens it (before the program starts), :meth:`collect` reads it (after the
    sandbox has exited) and :meth:`close` lets go of it; each may be called from any thread,
    and :meth:`close` at any time: a directory opened after it is closed at once
    (:meth:`nothing_made` only on the thread that closes it).
    """

    def __init__(self, path: str) -> None:
        self.path = path  # inside the sandbox: "/tmp/work"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"WorkDir({self.path!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def hold(self, init_pid: int, init_fd: int) -> bool:
        """Open the work dir of the sandbox whose pid 1 is ``init_pid`` (``init_fd`` its
        pidfd) once bwrap has set it up; whether it could be. Waits in a worker thread, at
        most :data:`READY_TIMEOUT`; if cancelled, the thread ends soon and keeps nothing."""
        pidfd = os.dup(init_fd)  # the thread's own: the caller may close init_fd meanwhile
        return await asyncio.to_thread(self._hold, init_pid, pidfd)

    def _hold(self, init_pid: int, pidfd: int) -> bool:
        try:
            fd = _open_when_ready(init_pid, pidfd, self.path, self._closed)
        finally:
            os.close(pidfd)
        if fd is None:
            return False
        with self._lock:
            if self._closed.is_set():
                os.close(fd)
                return False
            self._fd = fd
        return True

    def collect(self, inputs: Collection[str]) -> Collected:
        """Read the files the run made (besides ``inputs``), then close the directory.

        Call only once nothing of the sandbox runs any more. Nothing held: nothing found.
        """
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return Collected()
        try:
            return collect(fd, inputs)
        finally:
            os.close(fd)

    def nothing_made(self, inputs: Collection[str]) -> bool:
        """Whether a glance at the top of the work dir shows only ``inputs`` and names that are
        never artifacts: then :meth:`collect` would find nothing (the usual case), and the
        caller may skip it. Cheap enough for the event loop: it reads at most a few entries."""
        fd = self._fd
        if fd is None:
            return True
        with os.scandir(fd) as entries:  # rewound when closed: collect() sees them all
            for count, entry in enumerate(entries):
                if count == _GLANCE:
                    return False
                if _wanted(entry.name) and not (
                    entry.name in inputs and entry.is_file(follow_symlinks=False)
                ):
                    return False
        return True

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _open_when_ready(init_pid: int, pidfd: int, path: str, closed: threading.Event) -> int | None:
    """A directory fd on ``path`` in the sandbox, once bwrap has set the sandbox up.

    Ready means: the sandbox's pid 1 has pivoted into its new root (whose device is not the
    host root's), and ``path`` exists there on the same file system as its parent (the run's
    tmpfs, not a bind mount; before the pivot it is not there at all). bwrap does all of that
    before it waits on ``--block-fd``, and nothing of the snippet runs before the runner
    releases it, so what is opened is bwrap's own directory.
    """
    host_root = os.stat("/").st_dev
    root = f"/proc/{init_pid}/root"
    parent, name = os.path.split(path.strip("/"))
    waiting = select.poll()
    waiting.register(pidfd, select.POLLIN)  # readable once the process has ended
    started = time.monotonic()
    while True:
        try:
            fd = _open_work_dir(root, host_root, parent, name)
        except OSError as error:  # /proc refuses (EACCES): it will not change its mind
            _log.debug("work dir of sandbox %d not opened: %s", init_pid, error)
            return None
        if fd is not None:
            break
        if waiting.poll(0) or closed.is_set():
            return None  # ended in set-up, or the run is over
        if time.monotonic() - started > READY_TIMEOUT:
            _log.debug("work dir of sandbox %d not ready after %.1f s", init_pid, READY_TIMEOUT)
            return None
        time.sleep(READY_POLL)
    # Still alive (a zombie has no root to open): so the pid was not reused in between.
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def _open_work_dir(root: str, host_root: int, parent: str, name: str) -> int | None:
    """The work dir's fd if the sandbox is ready (see :func:`_open_when_ready`), else None."""
    try:
        if os.stat(root).st_dev == host_root:
            return None  # not pivoted yet
        parent_fd = os.open(f"{root}/{parent}", _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
        return None
    try:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if os.fstat(fd).st_dev != os.fstat(parent_fd).st_dev:
            os.close(fd)
            return None
        return fd
    finally:
        os.close(parent_fd)


def collect(dir_fd: int, inputs: Collection[str] = ()) -> Collected:
    """The artifacts in the directory ``dir_fd`` (see the module doc), ``inputs`` left out."""
    found: list[tuple[str, int]] = []
    _walk(dir_fd, "", 0, frozenset(inputs), found)
    found.sort()
    kept: list[Artifact] = []
    left = 0
    budget = MAX_ARTIFACT_BYTES
    for name, size in found:
        if len(kept) == MAX_ARTIFACTS or size > budget:
            left += 1
            continue
        data = _read(dir_fd, name, budget)
        if data is None:
            continue
        if len(data) > budget:
            left += 1
            continue
        kept.append(Artifact(name=name, data=data))
        budget -= len(data)
    return Collected(artifacts=tuple(kept), left=left)


def _walk(
    dir_fd: int, prefix: str, depth: int, inputs: frozenset[str], found: list[tuple[str, int]]
) -> None:
    """Add (name, size) of each candidate file under ``dir_fd`` to ``found``."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if not _wanted(entry.name):
                continue
            name = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < MAX_DEPTH:
                        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                        try:
                            _walk(sub, f"{name}/", depth + 1, inputs, found)
                        finally:
                            os.close(sub)
                elif entry.is_file(follow_symlinks=False) and name not in inputs:
                    found.append((name, entry.stat(follow_symlinks=False).st_size))
            except OSError as error:  # unreadable (a snippet's chmod 000, as a non-root bot)
                _log.debug("artifact %r skipped: %s", name, error)


def _wanted(part: str) -> bool:
    if part.startswith(".") or part in SKIPPED or not part.isprintable():
        return False
    try:
        part.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8 (scandir's surrogate escapes)
        return False
    return True


def _read(dir_fd: int, name: str, limit: int) -> bytes | None:
    """The bytes of regular file ``name`` (at most ``limit`` + 1), or None if it is none."""
    *parents, last = name.split("/")
    opened: list[int] = []
    try:
        parent = dir_fd
        for part in parents:
            parent = os.open(part, _DIR_FLAGS, dir_fd=parent)
            opened.append(parent)
        fd = os.open(last, _FILE_FLAGS, dir_fd=parent)
        opened.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        size = 0
        while size <= limit and (chunk := os.read(fd, min(limit + 1 - size, 1 << 20))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as error:
        _log.debug("artifact %r skipped: %s", name, error)
        return None
    finally:
        for fd in reversed(opened):
            os.close(fd)
