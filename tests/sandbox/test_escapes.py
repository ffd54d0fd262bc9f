"""The escape suite: each attack is contained, gives a clear result, and leaves the host as it was.

Every test here uses ``no_leftovers``: no sandboxed process may be alive before or after it.
Limits are lowered per test to keep the suite fast; the defaults are tested in test_limits.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from sandbox import Limits, Sandbox
from sandbox.limits import MiB
from tests.sandbox.conftest import descendants, sandbox_processes

pytestmark = pytest.mark.usefixtures("no_leftovers")

REPO = Path(__file__).resolve().parents[2]

_PROBE: list[int] = []


async def fork_count(sandbox: Sandbox) -> int:
    """How many children a run with ``processes=8`` could start, trying at most 20 (safe)."""
    if not _PROBE:
        code = (
            "import os, time\nstarted = 0\n"
            "for _ in range(20):\n"
            "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n"
            "    started += 1\n"
            "print(started)\n"
        )
        result = await sandbox.run("python", code, limits=Limits(processes=8, wall_time=5))
        assert result.status == "ok", result
        _PROBE.append(int(result.stdout))
    return _PROBE[0]


async def test_process_limit_is_in_force(sandbox: Sandbox) -> None:
    """The probe the fork bomb relies on: a bounded number of forks stops at the limit."""
    started = await fork_count(sandbox)

    assert started < 8  # pid 1 and python count too


async def test_fork_bomb(sandbox: Sandbox) -> None:
    if await fork_count(sandbox) >= 8:
        pytest.skip("RLIMIT_NPROC is not in force here; a fork bomb would reach the host")
    bomb = "bomb() { bomb | bomb & }\nbomb\nsleep 10\n"
    started = time.monotonic()

    result = await sandbox.run("bash", bomb, limits=Limits(processes=32, wall_time=2))

    assert time.monotonic() - started < 5
    assert (result.status, result.limit_hit) == ("limit", "processes"), result
    assert "Resource temporarily unavailable" in result.stderr


async def test_python_fork_loop(sandbox: Sandbox) -> None:
    if await fork_count(sandbox) >= 8:
        pytest.skip("RLIMIT_NPROC is not in force here")
    code = "import os\nwhile True:\n    os.fork()\n"

    result = await sandbox.run("python", code, limits=Limits(processes=16, wall_time=3))

    assert (result.status, result.limit_hit) == ("limit", "processes"), result
    assert "BlockingIOError" in result.stderr


async def test_memory_bomb(each_sandbox: Sandbox) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))\n"

    result = await each_sandbox.run("python", code)

    assert (result.status, result.limit_hit) == ("limit", "memory"), result
    if each_sandbox.cgroups is not None:  # the kernel's OOM killer, at the run's limit
        assert "Ran out of memory (limit: 1 GiB for the whole run" in result.message
        assert result.peak_memory_kb is not None and result.peak_memory_kb <= 1024 * 1024
    else:  # the address-space limit: the allocation fails
        assert "MemoryError" in result.stderr
        assert result.peak_memory_kb is None or result.peak_memory_kb < 512 * 1024


async def test_memory_bomb_in_c(each_sandbox: Sandbox) -> None:
    code = (
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "int main(void) {\n  for (;;) {\n    char *p = malloc(1 << 24);\n"
        '    if (!p) { perror("malloc"); return 1; }\n    memset(p, 1, 1 << 24);\n  }\n}\n'
    )

    if each_sandbox.cgroups is not None:  # the OOM killer at 256 MiB
        result = await each_sandbox.run("c", code, limits=Limits(memory_total=256 * MiB))
    else:  # malloc fails at the address-space limit (512 MiB), before the sampler's 1 GiB
        result = await each_sandbox.run("c", code)

    assert (result.status, result.limit_hit) == ("limit", "memory"), result
    if each_sandbox.cgroups is None:
        assert "Cannot allocate memory" in result.stderr


async def test_memory_spread_over_processes_is_capped_in_total(each_sandbox: Sandbox) -> None:
    """Each process stays under its address-space limit; together they pass memory_total."""
    code = (
        "import os, time\n"
        "for _ in range(6):\n"
        "    if os.fork() == 0:\n"
        "        block = bytearray(100 * 1024 * 1024)\n"
        "        time.sleep(10)\n"
        "        os._exit(0)\n"
        "time.sleep(10)\n"
    )
    limits = Limits(memory_total=256 * MiB, wall_time=8)
    started = time.monotonic()

    result = await each_sandbox.run("python", code, limits=limits)

    assert (result.status, result.limit_hit) == ("limit", "memory"), result
    assert time.monotonic() - started < 4


async def test_infinite_loop_hits_the_cpu_limit(sandbox: Sandbox) -> None:
    result = await sandbox.run("python", "while True:\n    pass\n", limits=Limits(cpu_time=1))

    assert (result.status, result.limit_hit) == ("limit", "cpu_time"), result
    assert result.message.startswith("Killed by SIGXCPU.")
    assert result.duration_ms < 3000


async def test_infinite_loop_in_c_hits_the_cpu_limit(sandbox: Sandbox) -> None:
    code = "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n"

    result = await sandbox.run("c", code, limits=Limits(cpu_time=1))

    assert (result.status, result.limit_hit) == ("limit", "cpu_time"), result


async def test_sleep_past_the_wall_clock(sandbox: Sandbox) -> None:
    started = time.monotonic()

    result = await sandbox.run("bash", "sleep 30", limits=Limits(wall_time=1))

    assert (result.status, result.limit_hit, result.exit_code) == ("limit", "wall_time", None)
    assert result.message == "Stopped at the wall-clock limit (1 s)."
    assert 0.9 < time.monotonic() - started < 2.5


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that records whether anyone connected."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        yield server.getsockname()[1]
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody got through


async def test_network_loopback_and_outside(sandbox: Sandbox, host_listener: int) -> None:
    if sandbox.cgroups is None:
        pytest.skip("IPv4 and IPv6 sockets exist only where a cgroup counts their buffers")
    code = (
        "import socket\n"
        "for host, port in [('127.0.0.1', PORT), ('8.8.8.8', 53), ('1.1.1.1', 443)]:\n"
        "    s = socket.socket()\n    s.settimeout(2)\n"
        "    print(host, s.connect_ex((host, port)))\n"
        "try:\n    socket.getaddrinfo('example.com', 80)\nexcept OSError as e:\n"
        "    print('dns', type(e).__name__)\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n"
    ).replace("PORT", str(host_listener))

    result = await sandbox.run("python", code)

    lines = result.stdout.splitlines()
    assert lines[0] == f"127.0.0.1 {errno.ECONNREFUSED}", result  # the sandbox's own loopback
    assert lines[1] == f"8.8.8.8 {errno.ENETUNREACH}"
    assert lines[2] == f"1.1.1.1 {errno.ENETUNREACH}"
    assert lines[3] == "dns gaierror"
    assert lines[4] == "['lo']"


async def test_the_bots_environment_is_not_visible(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-secret-4567")
    code = (
        "import os\nprint(sorted(os.environ))\n"
        "for pid in sorted(p for p in os.listdir('/proc') if p.isdigit()):\n"
        "    raw = open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    print(pid, sorted(v.split(b'=')[0].decode() for v in raw.split(b'\\0') if v))\n"
    )

    result = await sandbox.run("python", code)

    assert result.status == "ok", result
    names = str(
        [
            "HOME", "LANG", "MPLCONFIGDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH",
            "PWD", "TMPDIR",
        ]
    )  # fmt: skip
    # pid 1 (bwrap's init: none at all) and the snippet (only the sandbox's own variables)
    assert result.stdout.splitlines() == [names, "1 []", f"2 {names}"]
    for secret in ("secret", "OPENAI", "SLACK", "CODETHREAD"):
        assert secret not in result.stdout


@pytest.fixture
def bot_files(shared_tmp: Path) -> Path:
    """A world-readable SQLite database like the bot's, on the host."""
    database = shared_tmp / "codethread.db"
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("CREATE TABLE secrets (value TEXT)")
        conn.execute("INSERT INTO secrets VALUES ('top-secret-row')")
        conn.commit()
    database.chmod(0o644)
    return database


async def test_the_database_and_the_bots_files_are_not_visible(
    sandbox: Sandbox, bot_files: Path
) -> None:
    paths = [str(bot_files), str(bot_files.parent), str(REPO / "pyproject.toml"), str(REPO)]
    paths += ["/home", "/root", "/var", "/run", "/srv", "/mnt", "/opt"]
    code = (
        "import os\n"
        + "".join(f"print(os.path.exists({path!r}))\n" for path in paths)
        + "print(sorted(os.listdir('/')))\n"
    )

    result = await sandbox.run("python", code)

    assert result.stdout.splitlines()[:-1] == ["False"] * len(paths), result
    assert result.stdout.splitlines()[-1] == str(
        sorted(["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr"])
    )


async def test_writing_outside_the_work_dir_fails(sandbox: Sandbox) -> None:
    targets = ["/x", "/usr/x", "/etc/x", "/etc/passwd", "/dev/x", "/proc/sys/kernel/hostname",
               "/bin/x", "/usr/lib/x"]  # fmt: skip
    code = (
        "import os\n"
        f"for target in {targets!r}:\n"
        "    try:\n        open(target, 'w').write('x')\n        print(target, 'WRITTEN')\n"
        "    except OSError as e:\n        print(target, e.errno)\n"
        "open('here', 'w').write('ok'); open('/tmp/there', 'w').write('ok')\n"
        "print(open('here').read(), open('/tmp/there').read())\n"
    )

    result = await sandbox.run("python", code)

    assert result.status == "ok", result
    assert "WRITTEN" not in result.stdout
    assert result.stdout.splitlines()[-1] == "ok ok"


async def test_the_work_dir_is_a_capped_tmpfs(sandbox: Sandbox) -> None:
    code = (
        "import os\nwritten = 0\n"
        "try:\n    for i in range(100):\n"
        "        with open(f'f{i}', 'wb') as f:\n            f.write(b'x' * (8 << 20))\n"
        "        written += 8\n"
        "except OSError as e:\n    print(written, e.errno)\n"
    )

    result = await sandbox.run("python", code, limits=Limits(disk=32 * MiB))

    assert result.stdout.split() in (["24", str(errno.ENOSPC)], ["32", str(errno.ENOSPC)])


async def test_a_big_file_hits_the_file_size_limit(sandbox: Sandbox) -> None:
    shell = await sandbox.run("bash", "head -c 20000000 /dev/zero > big")
    python = await sandbox.run("python", "open('big', 'wb').write(bytes(20_000_000))")

    assert (shell.status, shell.limit_hit) == ("limit", "file_size"), shell
    assert (python.status, python.limit_hit) == ("limit", "file_size"), python


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_gigabytes_of_output_are_capped_and_stopped(sandbox: Sandbox, stream: str) -> None:
    code = (
        f"import sys\nblock = 'x' * 65536\nfor _ in range(16384):\n    sys.{stream}.write(block)\n"
    )
    started = time.monotonic()

    result = await sandbox.run("python", code)

    assert time.monotonic() - started < 3
    assert (result.status, result.limit_hit, result.truncated) == ("limit", "output", True)
    text = getattr(result, stream)
    assert text.startswith("x" * 65536)
    assert "[… output truncated: 65536 of " in text
    assert len(text) < 65536 + 100


async def test_output_a_little_over_the_cap_is_cut_but_the_run_finishes(sandbox: Sandbox) -> None:
    result = await sandbox.run("bash", "head -c 100000 /dev/zero | tr '\\0' y; echo; echo done >&2")

    assert (result.status, result.limit_hit, result.truncated) == ("ok", "output", True)
    assert result.stderr == "done\n"
    assert result.stdout.endswith("[… output truncated: 65536 of 100001 bytes shown]")


def command_lines() -> list[bytes]:
    """The command line of every process this test run started (orphans included: see conftest).

    Not every process on the host: another test run there may be running these same markers.
    """
    found = []
    for pid in descendants(os.getpid()):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue
    return found


async def test_background_processes_do_not_outlive_the_run(sandbox: Sandbox) -> None:
    code = (
        "(sleep 301 &)\n"
        "nohup sleep 302 > /dev/null 2>&1 &\n"
        "setsid sleep 303 &\n"
        "python3 -c 'import os, time\nif os.fork() == 0:\n os.setsid()\n time.sleep(304)' &\n"
        "sleep 0.3\necho started\n"
    )

    result = await sandbox.run("bash", code)

    assert result.stdout == "started\n", result
    # no_leftovers checks the uid/namespace; this checks by the marker arguments too.
    for cmdline in command_lines():
        assert not any(f"sleep\0{n}".encode() in cmdline for n in range(301, 304))
        assert b"time.sleep(304)" not in cmdline


async def test_a_run_cancelled_midway_leaves_nothing(sandbox: Sandbox) -> None:
    task = asyncio.create_task(sandbox.run("bash", "sleep 300 & sleep 300"))
    await asyncio.sleep(0.5)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_symlinks_out_of_the_work_dir_reach_nothing(
    sandbox: Sandbox, shared_tmp: Path
) -> None:
    secret = shared_tmp / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o644)
    code = (
        f"ln -s {secret} a; ln -s / root; ln -s /proc/1/root b\n"
        "cat a 2>&1; ls root/; cat b/etc/passwd; readlink -f /proc/self/root\n"
    )

    result = await sandbox.run("bash", code)

    assert "host secret" not in result.stdout
    assert "No such file or directory" in result.stdout
    assert "sandbox:x:1000:1000" in result.stdout  # the generated passwd, not the host's
    assert result.stdout.rstrip().endswith("/")


async def test_no_capabilities_no_new_privileges_and_a_seccomp_filter(sandbox: Sandbox) -> None:
    code = (
        "import ctypes, os\n"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "for key in ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp']:\n"
        "    print(key, status[key].strip())\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('shmget', libc.shmget(0, 4096, 0o1600), ctypes.get_errno())\n"
        "try:\n    os.memfd_create('x')\nexcept OSError as e:\n    print('memfd', e.errno)\n"
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
    )

    result = await sandbox.run("python", code)

    lines = result.stdout.splitlines()
    assert lines[:5] == [f"{cap} 0000000000000000" for cap in
                         ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")], result  # fmt: skip
    assert lines[5:7] == ["NoNewPrivs 1", "Seccomp 2"]
    assert lines[7] == f"shmget -1 {errno.ENOSYS}"
    assert lines[8] == f"memfd {errno.ENOSYS}"
    assert lines[9].startswith("unshare -1 ")
    assert lines[10] == "1000 1000 []"


async def test_runs_at_once_get_different_host_users(sandbox: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root bot switches users")
    runs = asyncio.gather(*(sandbox.run("bash", "sleep 1") for _ in range(2)))
    uids: set[int] = set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        uids = {uid for _, uid, _ in sandbox_processes()}
        if len(uids) == 2:
            break

    results = await runs

    assert [result.status for result in results] == ["ok", "ok"]
    assert len(uids) == 2 and all(uid >= 65536 for uid in uids)


async def test_open_files_are_limited_for_the_program(sandbox: Sandbox) -> None:
    code = (
        "import os\nopened = []\n"
        "try:\n    while True:\n        opened.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError as e:\n    print(len(opened), e.errno)\n"
    )

    result = await sandbox.run("python", code, limits=Limits(open_files=16))

    count, error = result.stdout.split()
    assert int(count) < 16 and int(error) == errno.EMFILE, result


@pytest.fixture
def dying_bot() -> Iterator[subprocess.Popen[bytes]]:
    """A separate Python process (a stand-in for the bot) in the middle of a long run."""
    code = (
        "import asyncio\nfrom sandbox import Sandbox\n"
        "asyncio.run(Sandbox().run('bash', 'sleep 300 & sleep 301', "
        "limits=__import__('sandbox').Limits(wall_time=60)))\n"
    )
    bot = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        yield bot
    finally:
        bot.kill()
        bot.wait()


async def test_the_runs_die_with_the_bot(
    sandbox: Sandbox, dying_bot: subprocess.Popen[bytes]
) -> None:
    for _ in range(3000):  # up to 30 s: a loaded shared machine starts the bot slowly
        if len(sandbox_processes()) >= 3:  # pid 1, bash and the sleeps
            break
        await asyncio.sleep(0.01)
    assert sandbox_processes(), "the run did not start"

    dying_bot.kill()  # SIGKILL: no cleanup code of ours runs
    for _ in range(1000):
        if not sandbox_processes():
            break
        await asyncio.sleep(0.01)

    assert sandbox_processes() == []
