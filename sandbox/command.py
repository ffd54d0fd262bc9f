"""The command line of one sandboxed step: setpriv → bwrap → bwrap's init → the program.

:class:`CommandBuilder` turns a program, its limits and its files into an argv and the file
descriptors that carry data into the sandbox. What the sandbox gets, and nothing more:

- its own user, pid, mount, network, IPC, UTS and cgroup namespaces (``--unshare-all``); the
  network namespace has only its own loopback, so nothing on the host or outside is reachable;
  no further user namespaces inside (``--disable-userns``);
- a fresh session (``--new-session``: no TIOCSTI into a terminal) and death with its parent;
- an environment of only ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and the toolchain's own
  variables (``--clearenv``; the chain itself starts with an empty environment), so no process
  inside, ``/proc/1/environ`` included, holds anything of the bot's;
- read-only ``/usr`` (with the merged-/usr links ``/bin``, ``/lib``…), ``/etc/alternatives``,
  the dynamic loader's config and the toolchain's extra binds; a generated ``/etc/passwd``,
  ``/etc/group``, ``/etc/hosts`` and ``/etc/nsswitch.conf``; nothing of ``/root``, ``/home``,
  ``/work``, ``/var``, ``/run`` or the bot's files;
- the prepared run environment, read-only, where there is one (:mod:`sandbox.environment`):
  the Python venv at ``/venv`` (``PATH`` starts with ``/venv/bin``) and ``/node_modules``;
- a new ``/proc`` (only its own processes) and a minimal ``/dev``, read-only but for a small
  ``/dev/shm``; a size-capped private tmpfs on ``/tmp`` holding the work dir ``/tmp/work``,
  and a read-only root;
- its files as sealed memfds copied in by bwrap (``--file``), mode 0444 (programs 0555): the
  snippet's user owns them, so only a deliberate ``chmod`` makes one writable (harmless: the
  work dir is the run's own); stdin as a sealed memfd;
- the seccomp filter of :mod:`sandbox.seccomp`;
- bwrap's own init as pid 1 (it reaps orphans; when the program exits it exits too, and the
  kernel ends everything left in the pid namespace);
- bwrap waits (``--block-fd``) before it starts the program until the runner has set the
  program's limits on the sandbox's pid 1 - inside the sandbox's own user namespace, see
  :mod:`sandbox.limits`; under another uid ``prlimit`` sets them inside instead - and, with a
  run cgroup the chain is not born in (:mod:`sandbox.cgroups`), moved it into that cgroup, so
  that everything of the run counts;
- when the bot runs as root: the real, effective and saved uid/gid of a reserved unprivileged
  user, no supplementary groups, no capabilities in any set, ``no_new_privs``, all set by
  ``setpriv`` *before* bwrap starts.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from sandbox.environment import NODE_MOUNT, PYTHON_MOUNT, RunEnvironment
from sandbox.limits import Limits, MiB
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

    ``python3`` builds the run environment's venv and ``prlimit`` sets the limits of runs under
    another uid inside the sandbox: both must live under /usr.
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
    release_fd: int  # write end of bwrap's --block-fd pipe
    owned_fds: list[int] = field(default_factory=list)

    def close_child_ends(self) -> None:
        """Close what only the child needed (call after it started)."""
        for fd in self.owned_fds:
            os.close(fd)
        self.owned_fds.clear()

    def close(self) -> None:
        self.close_child_ends()
        for fd in (self.status_fd, self.release_fd):
            if fd >= 0:
                os.close(fd)
        self.status_fd = self.release_fd = -1

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
        self._seccomp = {flag: build_filter(accounted=flag) for flag in (False, True)}
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
        environment: RunEnvironment | None = None,
        accounted: bool = False,
    ) -> Command:
        """The command running ``argv`` in ``WORK_DIR``.

        ``uid``: drop to this uid/gid first (the caller must be root); None keeps the current
        (unprivileged) user. ``host_work_dir``: bind this host directory read-write as the
        work dir (compile steps, whose output must outlive the sandbox) instead of an empty one
        inside the tmpfs; ``files`` are created in the work dir either way. ``environment``:
        the prepared packages to bind. ``accounted``: the run has a memory cgroup: the seccomp
        filter is the cgroup's (see :mod:`sandbox.seccomp`). bwrap waits for a byte on
        :attr:`Command.release_fd` before it starts the program.
        """
        programs = self.programs
        if programs.bwrap is None or (uid is not None and programs.prlimit is None):
            raise RuntimeError("bwrap (and prlimit, to switch users) are required")
        status_r, status_w = os.pipe()
        owned: list[int] = [status_w]
        release_w = -1
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
            chain += [
                programs.bwrap,
                "--unshare-all", "--unshare-user", "--disable-userns",
                "--new-session", "--die-with-parent", "--clearenv",
                "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID),
                "--hostname", "sandbox",
                "--json-status-fd", str(status_w),
            ]  # fmt: skip
            release_r, release_w = os.pipe()
            owned.append(release_r)
            chain += ["--block-fd", str(release_r)]
            seccomp = self._seccomp[accounted]
            if seccomp is not None:
                chain += ["--seccomp", data_fd("seccomp", seccomp)]
            chain += self._root_args
            for pattern in binds:
                for path in sorted(glob.glob(pattern)):
                    chain += ["--ro-bind", path, path]
            for name, text in _etc_files().items():
                # a file on the root tmpfs, which is remounted read-only below (cheaper than a
                # bind mount each)
                chain += ["--perms", "0444", "--file", data_fd(name, text.encode())]
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
                chain += ["--perms", "0555" if item.executable else "0444"]
                chain += ["--file", source, f"{WORK_DIR}/{item.name}"]
            path = SANDBOX_PATH
            if environment is not None and environment.python_dir is not None:
                chain += ["--ro-bind", environment.python_dir, PYTHON_MOUNT]
                path = f"{PYTHON_MOUNT}/bin:{path}"
            if environment is not None and environment.node_modules is not None:
                chain += ["--ro-bind", environment.node_modules, NODE_MOUNT]
            chain += ["--remount-ro", "/", "--chdir", WORK_DIR]
            variables = {
                "PATH": path,
                "HOME": WORK_DIR,
                "TMPDIR": "/tmp",
                "LANG": "C.UTF-8",
                **(env or {}),
            }
            for name, value in variables.items():
                chain += ["--setenv", name, value]
            chain.append("--")
            if uid is not None:  # the runner may not prlimit(2) another user's process
                assert programs.prlimit is not None
                chain += [programs.prlimit, *limits.prlimit_args(address_space=not accounted)]
                chain.append("--")
            chain += argv
        except BaseException:
            for fd in (status_r, release_w, *owned):
                if fd >= 0:
                    os.close(fd)
            raise
        pass_fds = [fd for fd in owned if fd != stdin_fd]
        pass_fds += [item.fd for item in files if item.fd is not None]
        return Command(
            argv=chain,
            stdin_fd=stdin_fd,
            pass_fds=pass_fds,
            status_fd=status_r,
            release_fd=release_w,
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
