"""The command line of one sandboxed step: setpriv → prlimit → bwrap → reaper → the program.

:class:`CommandBuilder` turns a program, its limits and its files into an argv and the file
descriptors that carry data into the sandbox. What the sandbox gets, and nothing more:

- its own user, pid, mount, network, IPC, UTS and cgroup namespaces (``--unshare-all``); the
  network namespace has only its own loopback, so nothing on the host or outside is reachable;
  no further user namespaces inside (``--disable-userns``);
- a fresh session (``--new-session``: no TIOCSTI into a terminal) and death with its parent;
- an environment of only ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and the toolchain's own
  variables (``--clearenv``). The chain itself starts with an empty environment and the
  sandbox's pid 1 is :mod:`sandbox.reaper`, started by bwrap with that cleared environment, so
  no process inside (``/proc/1/environ`` included) holds anything of the bot's;
- read-only ``/usr`` (with the merged-/usr links ``/bin``, ``/lib``…), ``/etc/alternatives``,
  the dynamic loader's config and the toolchain's extra binds; a generated ``/etc/passwd``,
  ``/etc/group``, ``/etc/hosts`` and ``/etc/nsswitch.conf``; nothing of ``/root``, ``/home``,
  ``/work``, ``/var``, ``/run`` or the bot's files;
- a new ``/proc`` (only its own processes) and a minimal ``/dev``, read-only but for a small
  ``/dev/shm``; a size-capped private tmpfs on ``/tmp`` holding the work dir ``/tmp/work``,
  and a read-only root;
- its files as sealed memfds copied in by bwrap (``--file``), stdin as a sealed memfd;
- the seccomp filter of :mod:`sandbox.seccomp`;
- when the bot runs as root: the real, effective and saved uid/gid of a reserved unprivileged
  user, no supplementary groups, no capabilities in any set, ``no_new_privs``, all set by
  ``setpriv`` *before* bwrap starts, so ``RLIMIT_NPROC`` counts against that user on the host.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from sandbox.limits import Limits, MiB
from sandbox.reaper import REAPER_SOURCE
from sandbox.seccomp import build_filter
from sandbox.toolchains import SANDBOX_PATH

__all__ = ["WORK_DIR", "Command", "CommandBuilder", "Programs", "SandboxFile"]

WORK_DIR = "/tmp/work"
INSIDE_UID = 1000  # the uid/gid programs see inside (mapped to the real one outside)
SHM_SIZE = 8 * MiB

#: Host paths that may be symlinks (merged /usr) or directories, mirrored read-only.
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Small /etc files the dynamic loader and the toolchains read, bound read-only when present.
_ETC_BINDS = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Programs:
    """Absolute paths of the host programs the chain is made of (None: not installed).

    ``python3`` runs the sandbox's pid 1 (:mod:`sandbox.reaper`), so it must live under /usr.
    """

    bwrap: str | None
    prlimit: str | None
    setpriv: str | None
    python3: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxFile:
    """A file to create in the work dir: ``name`` relative to it, from ``data`` or ``fd``."""

    name: str
    data: bytes | None = None
    fd: int | None = None  # an open file to copy (the caller keeps ownership)
    executable: bool = False


@dataclass(slots=True)
class Command:
    """An argv plus the descriptors it needs; close it (``with``) once the process started."""

    argv: list[str]
    stdin_fd: int
    pass_fds: list[int]
    status_fd: int  # read end of bwrap's --json-status-fd pipe
    report_fd: int  # read end of the reaper's report pipe
    owned_fds: list[int] = field(default_factory=list)

    def close_child_ends(self) -> None:
        """Close what only the child needed (call after it started)."""
        for fd in self.owned_fds:
            os.close(fd)
        self.owned_fds.clear()

    def close(self) -> None:
        self.close_child_ends()
        for fd in (self.status_fd, self.report_fd):
            if fd >= 0:
                os.close(fd)
        self.status_fd = self.report_fd = -1

    def __enter__(self) -> Command:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _memfd(name: str, data: bytes) -> int:
    """An anonymous file holding ``data``, sealed: nobody (not the sandbox) can change it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        _write_all(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class CommandBuilder:
    """Builds :class:`Command` values for one machine's layout (probed once, at construction)."""

    def __init__(self, programs: Programs) -> None:
        self.programs = programs
        self._seccomp = build_filter()
        self._root_args: list[str] = ["--ro-bind", "/usr", "/usr"]
        for path in _ROOT_LINKS:
            if os.path.islink(path):
                self._root_args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                self._root_args += ["--ro-bind", path, path]
        for path in _ETC_BINDS:
            if os.path.lexists(path):
                self._root_args += ["--ro-bind", path, path]

    def build(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        uid: int | None,
        files: Sequence[SandboxFile] = (),
        host_work_dir: str | None = None,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        binds: Sequence[str] = (),
    ) -> Command:
        """The command running ``argv`` in ``WORK_DIR``.

        ``uid``: drop to this uid/gid first (the caller must be root); None keeps the current
        (unprivileged) user. ``host_work_dir``: bind this host directory read-write as the
        work dir (compile steps, whose output must outlive the sandbox) instead of an empty one
        inside the tmpfs; ``files`` are created in the work dir either way.
        """
        programs = self.programs
        if programs.bwrap is None or programs.prlimit is None or programs.python3 is None:
            raise RuntimeError("bwrap, prlimit and python3 are required")
        status_r, status_w = os.pipe()
        report_r, report_w = os.pipe()
        owned: list[int] = [status_w, report_w]
        try:
            stdin_fd = _memfd("stdin", stdin)
            owned.append(stdin_fd)

            def data_fd(name: str, data: bytes) -> str:
                fd = _memfd(name, data)
                owned.append(fd)
                return str(fd)

            chain: list[str] = []
            if uid is not None:
                if programs.setpriv is None:
                    raise RuntimeError("setpriv is required to switch users")
                chain += [
                    programs.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
                ]  # fmt: skip
            chain += [programs.prlimit, *limits.prlimit_args(), "--"]
            chain += [
                programs.bwrap,
                "--unshare-all", "--unshare-user", "--disable-userns",
                "--new-session", "--die-with-parent", "--clearenv", "--as-pid-1",
                "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID),
                "--hostname", "sandbox",
                "--json-status-fd", str(status_w),
            ]  # fmt: skip
            if self._seccomp is not None:
                chain += ["--seccomp", data_fd("seccomp", self._seccomp)]
            chain += self._root_args
            for pattern in binds:
                for path in sorted(glob.glob(pattern)):
                    chain += ["--ro-bind", path, path]
            for name, text in _etc_files().items():
                chain += ["--perms", "0444", "--ro-bind-data", data_fd(name, text.encode())]
                chain += [f"/etc/{name}"]
            chain += [
                "--proc", "/proc",
                "--dev", "/dev",
                "--size", str(SHM_SIZE), "--tmpfs", "/dev/shm",
                "--remount-ro", "/dev",
                "--size", str(limits.disk), "--tmpfs", "/tmp",
            ]  # fmt: skip
            if host_work_dir is not None:
                chain += ["--bind", host_work_dir, WORK_DIR]
            else:
                chain += ["--dir", WORK_DIR]
            made_dirs: set[str] = set()
            for item in files:
                parts = item.name.split("/")
                for depth in range(1, len(parts)):
                    directory = "/".join(parts[:depth])
                    if directory not in made_dirs:
                        made_dirs.add(directory)
                        chain += ["--dir", f"{WORK_DIR}/{directory}"]
                if item.fd is not None:
                    source = str(item.fd)
                else:
                    source = data_fd(item.name.rsplit("/", 1)[-1], item.data or b"")
                chain += ["--perms", "0755" if item.executable else "0644"]
                chain += ["--file", source, f"{WORK_DIR}/{item.name}"]
            chain += ["--remount-ro", "/", "--chdir", WORK_DIR]
            variables = {
                "PATH": SANDBOX_PATH,
                "HOME": WORK_DIR,
                "TMPDIR": "/tmp",
                "LANG": "C.UTF-8",
                **(env or {}),
            }
            for name, value in variables.items():
                chain += ["--setenv", name, value]
            chain += ["--", programs.python3, "-I", "-S", "-B", "-c", REAPER_SOURCE, str(report_w)]
            chain += [str(limits.open_files), *argv]
        except BaseException:
            for fd in (status_r, report_r, *owned):
                os.close(fd)
            raise
        pass_fds = [fd for fd in owned if fd != stdin_fd]
        pass_fds += [item.fd for item in files if item.fd is not None]
        return Command(
            argv=chain,
            stdin_fd=stdin_fd,
            pass_fds=pass_fds,
            status_fd=status_r,
            report_fd=report_r,
            owned_fds=owned,
        )


def _etc_files() -> dict[str, str]:
    user = f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}:sandbox:{WORK_DIR}:/bin/sh\n"
    return {
        "passwd": f"root:x:0:0:root:/root:/bin/false\n{user}",
        "group": f"root:x:0:\nsandbox:x:{INSIDE_UID}:\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
