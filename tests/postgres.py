"""A real PostgreSQL server for the tests, started from Debian's packages in a private dir.

``initdb`` makes a throwaway cluster in a temp dir, and ``postgres`` serves it on a Unix
socket in that dir only (no TCP port, so test runs sharing a machine never meet). PostgreSQL
refuses to run as root, so when the tests run as root the cluster belongs to an unprivileged
user (Debian's ``postgres`` user, made by the package) and is started through ``runuser``.
Where no server binaries are installed, :func:`find_bin` returns None and the PostgreSQL
variants of the tests are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["find_bin", "postgres_server"]


def find_bin() -> Path | None:
    """The newest installed PostgreSQL's bin dir (``/usr/lib/postgresql/N/bin``), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """A running server; yields the DSN of its database ``codethread``."""
    user = None
    if os.geteuid() == 0:
        user = "postgres" if _exists("postgres") else "nobody"
    root = Path(tempfile.mkdtemp(prefix="codethread-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    server: subprocess.Popen[bytes] | None = None
    # The server's log goes to a file, not a pipe: nobody reads a pipe once the server is up,
    # and a full one (every refused statement is logged) would stop the server mid-test.
    log_path = root / "server.log"
    try:
        subprocess.run(
            _as_user(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                            "-A", "trust", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True,
        )  # fmt: skip
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                _as_user(user, [str(bin_dir / "postgres"), "-D", str(data), "-k", str(sockets),
                                "-c", "listen_addresses=", "-c", "fsync=off",
                                "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not list(sockets.glob(".s.PGSQL.*")):
            if server.poll() is not None or time.monotonic() > deadline:
                err = log_path.read_text(errors="replace")
                raise RuntimeError(f"PostgreSQL did not start: {err[-2000:]}")
            time.sleep(0.05)
        psql = [str(bin_dir / "psql"), "-h", str(sockets), "-U", "postgres", "-d", "postgres"]
        for _ in range(100):  # the socket appears a moment before connections are accepted
            done = subprocess.run([*psql, "-c", "CREATE DATABASE codethread"], capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"PostgreSQL refused: {done.stderr.decode()[-500:]}")
        yield f"postgresql://postgres@/codethread?host={sockets}"
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
