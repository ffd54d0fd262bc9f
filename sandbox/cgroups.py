"""Memory cgroups for runs: the kernel counts each run's memory as a whole, kernel objects too.

Per-process sampling misses what a run holds in the kernel: socket buffers, pipes, tmpfs
inodes, page tables. A memory cgroup counts all of it against one limit, and at the limit the
kernel's OOM killer ends the run - not the bot or its model, which the host's OOM killer would
pick. Each run gets a cgroup of its own (``memory.max`` = ``Limits.memory_total``, no swap; with
``memory.oom.group`` the whole run is killed together); its peak (``memory.peak``), OOM kills
(``memory.events``) and CPU time (``cpu.stat``) describe the run afterwards.

Where :meth:`Cgroups.discover` finds one it may use:

- cgroup v2, when the bot's own cgroup is delegated to it: owned by the bot's (non-root) user, as
  systemd's ``Delegate=yes`` makes it, or the root of its cgroup namespace and writable (a
  container given a writable cgroupfs). v2 lets a cgroup that holds processes have no
  controllers for its children, so the bot first moves the processes of its cgroup into a leaf,
  ``bot/``, then enables ``memory`` for the children ``run-*``;
- cgroup v1, when the bot may write to its own ``memory`` cgroup (root, on a host that still
  mounts v1): runs go under ``codethread-PID/`` there. v1 counts TCP buffers apart from the
  rest, under a limit of the same size (``memory.kmem.tcp.limit_in_bytes``).

Elsewhere (a container with a read-only cgroupfs, a non-root bot outside systemd) it returns why
not, and the sandbox uses the fallback documented in :mod:`sandbox.limits` and
:mod:`sandbox.seccomp`.

How a run gets into its cgroup, so that everything the snippet ever runs is inside:

- v2: a cgroup per run; the bot moves the sandbox's pid 1 into it while bwrap holds it before
  it starts the program (``--block-fd``);
- v1: a write to ``cgroup.procs`` costs the kernel an RCU grace period (several ms, every
  run), so instead each cgroup is a reusable *slot* with a thread of the bot parked in it (v1
  lets one thread move): the sandbox is started from that thread and is born inside. Between
  runs the slot's limits are set anew and its peak reset (``memory.max_usage_in_bytes``).

Cgroups of a bot that died (``run-PID-N`` and ``codethread-PID`` of a pid that is gone) are
removed by the next :meth:`Cgroups.discover`.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

__all__ = ["Cgroups", "RunCgroup", "RunStats"]

Version = Literal[1, 2]

_LEAF = "bot"  # v2: the leaf the bot's own processes move to
_REMOVE_TIMEOUT = 1.0  # seconds to wait for an emptied cgroup before leaving it for later


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStats:
    """What a run's cgroup counted."""

    peak: int | None  # bytes: the most memory the run held at once (None: kernel too old)
    oom_kills: int  # processes the OOM killer ended at the run's limit
    cpu_time: float | None  # seconds, user + system, of every process of the run (v2 only)


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def _keyed(text: str) -> dict[str, str]:
    """``key value`` lines (memory.events, cpu.stat, memory.oom_control) as a mapping."""
    return dict(line.split(None, 1) for line in text.splitlines() if " " in line)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another uid's counts: it is there, just not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    """The pid in ``PREFIX-PID`` or ``PREFIX-PID-N``, or None for another name."""
    if not name.startswith(prefix):
        return None
    head = name[len(prefix) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


class RunCgroup:
    """One run's cgroup (v2), or a slot that runs take turns in (v1, with ``spawner``).

    ``spawner``: the executor whose one thread is parked in this cgroup; a process started
    from it is born inside, so nothing needs :meth:`admit`.
    """

    def __init__(self, path: str, version: Version) -> None:
        self.path = path
        self.version = version
        self.spawner: ThreadPoolExecutor | None = None
        self._oom_baseline = 0

    def __repr__(self) -> str:
        return f"RunCgroup({self.path!r})"

    def admit(self, pid: int) -> None:
        """Move process ``pid`` (and so all it will start) into this cgroup."""
        _write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def prepare(self, memory: int) -> None:
        """v1 slot: the next run's limits, its peak and OOM count starting from zero."""
        join = os.path.join
        memory_file = join(self.path, "memory.limit_in_bytes")
        swap = {"memory.memsw.limit_in_bytes": str(memory)}  # absent without swap accounting
        raising = memory > int(_read(memory_file))
        if raising:  # memory+swap must stay >= memory at every step
            Cgroups._optional(self.path, swap)
        _write(memory_file, str(memory))
        if not raising:
            Cgroups._optional(self.path, swap)
        Cgroups._optional(
            self.path,
            {"memory.kmem.tcp.limit_in_bytes": str(memory), "memory.max_usage_in_bytes": "0"},
        )
        self._oom_baseline = 0
        self._oom_baseline = self.oom_kills()

    def stats(self) -> RunStats:
        join = os.path.join
        if self.version == 2:
            events = _keyed(_read(join(self.path, "memory.events")))
            cpu = _keyed(_read(join(self.path, "cpu.stat")))
            peak: int | None = None
            with contextlib.suppress(FileNotFoundError):  # memory.peak: Linux 5.19+
                peak = int(_read(join(self.path, "memory.peak")))
            usage = cpu.get("usage_usec")
            return RunStats(
                peak=peak,
                oom_kills=int(events.get("oom_kill", "0")),
                cpu_time=int(usage) / 1e6 if usage is not None else None,
            )
        return RunStats(
            peak=int(_read(join(self.path, "memory.max_usage_in_bytes"))),
            oom_kills=self.oom_kills(),
            cpu_time=None,
        )

    def oom_kills(self) -> int:
        """Processes the OOM killer ended so far (cheap enough to poll while the run goes on)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        count = int(_keyed(_read(os.path.join(self.path, name))).get("oom_kill", "0"))
        return count - self._oom_baseline

    def _pids(self) -> list[int]:
        """The processes in the cgroup, never this one (a v1 slot holds one of its threads)."""
        try:
            pids = [int(line) for line in _read(os.path.join(self.path, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []
        return [pid for pid in pids if pid != os.getpid()]

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup (none, normally: the sandbox is gone)."""
        if self.spawner is None and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            with contextlib.suppress(FileNotFoundError):
                _write(os.path.join(self.path, "cgroup.kill"), "1")
            return
        for pid in self._pids():
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(pid)
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                finally:
                    os.close(pidfd)

    def remove(self, timeout: float = _REMOVE_TIMEOUT) -> bool:
        """Kill what is left and delete the cgroup; False if it is still busy after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:  # EBUSY: processes (or their last exit) still in it
                if time.monotonic() > deadline:
                    return False
                self.kill()
                time.sleep(0.002)


class Cgroups:
    """Where run cgroups are made: ``path``, a directory of ours in a hierarchy with memory."""

    _counter = itertools.count(1)

    def __init__(self, path: str, version: Version) -> None:
        self.path = path
        self.version = version
        self._busy: list[RunCgroup] = []  # removed later: they were not empty yet
        self._free: list[RunCgroup] = []  # v1 slots between runs
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Cgroups({self.path!r}, v{self.version})"

    @property
    def accounts_sockets(self) -> bool:
        """Whether socket buffers (TCP's included) count against the run's limit."""
        return self.version == 2 or os.path.exists(
            os.path.join(self.path, "memory.kmem.tcp.limit_in_bytes")
        )

    def create(self, memory: int) -> RunCgroup:
        """A cgroup for one run, limited to ``memory`` bytes (no swap); :meth:`release` it."""
        if self.version == 1:
            return self._slot(memory)
        with self._lock:
            busy, self._busy = self._busy, []
        busy = [cgroup for cgroup in busy if not cgroup.remove(timeout=0)]
        path = os.path.join(self.path, f"run-{os.getpid()}-{next(self._counter)}")
        os.mkdir(path)
        cgroup = RunCgroup(path, self.version)
        try:
            _write(os.path.join(path, "memory.max"), str(memory))
            self._optional(path, {"memory.swap.max": "0", "memory.oom.group": "1"})
        except BaseException:
            cgroup.remove(timeout=0)
            raise
        with self._lock:
            self._busy += busy
        return cgroup

    def reuse(self, memory: int) -> RunCgroup | None:
        """Like :meth:`create`, but only what takes no more than a few small writes: a free v1
        slot, or a new v2 cgroup; None when a slot must be made (:meth:`create`, in a thread:
        parking its thread costs the kernel a grace period)."""
        if self.version == 2:
            return self.create(memory)
        with self._lock:
            cgroup = self._free.pop() if self._free else None
        if cgroup is not None:
            try:
                cgroup.prepare(memory)
            except BaseException:
                self.release(cgroup)
                raise
        return cgroup

    def _slot(self, memory: int) -> RunCgroup:
        with self._lock:
            cgroup = self._free.pop() if self._free else None
        if cgroup is None:
            path = os.path.join(self.path, f"run-{os.getpid()}-{next(self._counter)}")
            os.mkdir(path)
            cgroup = RunCgroup(path, 1)
            self._optional(path, {"memory.swappiness": "0"})
            spawner = ThreadPoolExecutor(1, thread_name_prefix="codethread-cgroup")
            tasks = os.path.join(path, "tasks")
            try:
                spawner.submit(lambda: _write(tasks, str(threading.get_native_id()))).result()
            except BaseException:
                spawner.shutdown()
                cgroup.remove(timeout=0)
                raise
            cgroup.spawner = spawner
        try:
            cgroup.prepare(memory)
        except BaseException:
            self.release(cgroup)
            raise
        return cgroup

    def release(self, cgroup: RunCgroup, *, wait: bool = True) -> bool:
        """Remove a run's cgroup (a v1 slot is emptied and kept for the next run).

        If it is still emptying: with ``wait``, wait up to a second for it, then leave it for a
        later :meth:`create`; without, return False at once (and keep it).
        """
        if cgroup.spawner is not None:
            cgroup.kill()  # normally nobody: the sandbox is gone
            with self._lock:
                self._free.append(cgroup)
            return True
        if cgroup.remove(timeout=_REMOVE_TIMEOUT if wait else 0):
            return True
        if wait:
            with self._lock:
                self._busy.append(cgroup)
        return False

    @staticmethod
    def _optional(path: str, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            with contextlib.suppress(OSError):  # absent (no swap accounting) or refused
                _write(os.path.join(path, name), value)

    # -- finding one -----------------------------------------------------------------------

    @classmethod
    def discover(
        cls, *, mountinfo: str = "/proc/self/mountinfo", membership: str = "/proc/self/cgroup"
    ) -> Cgroups | str:
        """The cgroups this process may make runs in, or a one-line reason why there are none."""
        try:
            mounts = _mounts(_read(mountinfo))
            own = _membership(_read(membership))
        except OSError as error:
            return f"cannot read the cgroup setup ({error.strerror})"
        if "cgroup2" in mounts and "" in own:
            directory = os.path.normpath(os.path.join(mounts["cgroup2"], own[""].lstrip("/")))
            try:
                controllers = _read(os.path.join(directory, "cgroup.controllers")).split()
            except OSError:
                controllers = []
            if "memory" in controllers or os.path.basename(directory) == _LEAF:
                return cls._delegated_v2(directory, own[""])
        if "memory" in mounts and "memory" in own:
            directory = os.path.normpath(os.path.join(mounts["memory"], own["memory"].lstrip("/")))
            return cls._v1(directory)
        return "no cgroup hierarchy with the memory controller"

    @classmethod
    def _delegated_v2(cls, directory: str, own: str) -> Cgroups | str:
        if os.path.basename(directory) == _LEAF:  # moved there by an earlier discover()
            parent = os.path.dirname(directory)
            try:
                control = _read(os.path.join(parent, "cgroup.subtree_control")).split()
            except OSError:
                control = []
            if "memory" in control and os.access(parent, os.W_OK):
                return cls._ready(parent, 2)
            return f"the cgroup {parent} is not delegated to this process"
        try:
            owner = os.stat(directory).st_uid
        except OSError as error:
            return f"cannot look at the cgroup {directory} ({error.strerror})"
        euid = os.geteuid()
        delegated = (owner == euid and euid != 0) or own == "/"
        if not delegated or not os.access(os.path.join(directory, "cgroup.procs"), os.W_OK):
            return f"the cgroup {directory} is not delegated to this process"
        leaf = os.path.join(directory, _LEAF)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf)
            for _ in range(20):  # processes may start while we move them
                pids = _read(os.path.join(directory, "cgroup.procs")).split()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                        _write(os.path.join(leaf, "cgroup.procs"), pid)
            _write(os.path.join(directory, "cgroup.subtree_control"), "+memory")
        except OSError as error:
            return f"cannot delegate memory in the cgroup {directory} ({error.strerror})"
        return cls._ready(directory, 2)

    @classmethod
    def _v1(cls, directory: str) -> Cgroups | str:
        if not os.access(directory, os.W_OK):
            return f"the memory cgroup {directory} is not writable by this process"
        _remove_stale(directory, "codethread-", version=1, nested=True)
        base = os.path.join(directory, f"codethread-{os.getpid()}")
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(base)
        except OSError as error:
            return f"cannot create a memory cgroup in {directory} ({error.strerror})"
        atexit.register(_remove_tree, base)
        return cls._ready(base, 1)

    @classmethod
    def _ready(cls, path: str, version: Version) -> Cgroups:
        """The one instance of this process for ``path`` (its free v1 slots are shared)."""
        with _FOUND_LOCK:
            if (path, version) not in _FOUND:
                _remove_stale(path, "run-", version=version, nested=False)
                _FOUND[path, version] = cls(path, version)
            return _FOUND[path, version]


_FOUND: dict[tuple[str, Version], Cgroups] = {}
_FOUND_LOCK = threading.Lock()


def _mounts(text: str) -> dict[str, str]:
    """Mount points: ``cgroup2`` for the v2 hierarchy, ``memory`` for v1's memory controller."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        point, kind, options = fields[4], fields[dash + 1], fields[-1].split(",")
        if kind == "cgroup2":
            found.setdefault("cgroup2", point)
        elif kind == "cgroup" and "memory" in options:
            found.setdefault("memory", point)
    return found


def _membership(text: str) -> dict[str, str]:
    """This process's cgroup per controller: ``""`` for v2, ``"memory"`` for v1's."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if parts[0] == "0" and controllers == "":
            found[""] = path
        elif "memory" in controllers.split(","):
            found["memory"] = path
    return found


def _remove_stale(directory: str, prefix: str, *, version: Version, nested: bool) -> None:
    """Remove the cgroups ``PREFIX-PID…`` in ``directory`` whose process is gone."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid = _owner_pid(name, prefix)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        path = os.path.join(directory, name)
        if nested:
            _remove_tree(path)
        else:
            RunCgroup(path, version).remove(timeout=0.1)


def _remove_tree(path: str) -> None:
    """Remove a cgroup and its child cgroups (best effort: at exit, or a dead bot's)."""
    with contextlib.suppress(OSError):
        children: Iterable[str] = [
            entry.path for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)
        ]
        for child in children:
            RunCgroup(child, 1).remove(timeout=0.1)
        os.rmdir(path)
