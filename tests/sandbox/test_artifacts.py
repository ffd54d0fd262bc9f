"""Binary input files, and the files a run makes coming back as artifacts (real bwrap runs)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sandbox import (
    MAX_ARTIFACT_BYTES,
    MAX_ARTIFACTS,
    TOOLCHAINS,
    Artifact,
    Limits,
    RunResult,
    Sandbox,
    SandboxPool,
)
from sandbox.artifacts import WorkDir, collect
from sandbox.limits import MiB

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
CSV = b"id;name\n1;caf\xc3\xa9\n2;\xff\xfe raw bytes\x00\n"


def names(result: RunResult) -> list[str]:
    return [item.name for item in result.artifacts]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_files_the_run_writes_come_back_with_their_bytes(
    sandbox: Sandbox, no_leftovers: None
) -> None:
    code = (
        "import os\nopen('out.txt', 'w').write('done\\n')\nos.mkdir('img')\n"
        f"open('img/plot.png', 'wb').write({PNG!r})\nprint('ok')\n"
    )

    result = await sandbox.run("python", code)

    assert (result.status, result.stdout) == ("ok", "ok\n"), result
    assert result.artifacts == (
        Artifact(name="img/plot.png", data=PNG),
        Artifact(name="out.txt", data=b"done\n"),
    )
    assert [item.size for item in result.artifacts] == [len(PNG), 5]
    assert result.artifacts_left == 0
    assert repr(result.artifacts[1]) == "Artifact(name='out.txt', size=5)"


async def test_print_has_no_artifacts(sandbox: Sandbox) -> None:
    result = await sandbox.run("python", "print(1)")

    assert (result.status, result.stdout, result.artifacts, result.artifacts_left) == (
        "ok", "1\n", (), 0,
    )  # fmt: skip


async def test_binary_inputs_are_read_only_and_not_returned(sandbox: Sandbox) -> None:
    code = (
        "import os, stat\n"
        "data = open('data.csv', 'rb').read()\n"
        f"assert data == {CSV!r}, data\n"
        "assert open('notes/readme.txt').read() == 'caf\\u00e9'\n"
        "print(oct(stat.S_IMODE(os.stat('data.csv').st_mode)))\n"
        "try:\n    open('data.csv', 'ab')\nexcept PermissionError:\n    print('refused')\n"
        "os.chmod('notes/readme.txt', 0o644)\n"  # its owner may: harmless, the run's own
        "open('notes/readme.txt', 'w').write('changed')\n"
        "open('notes/mine.txt', 'w').write('made')\n"
    )
    files: dict[str, bytes | str] = {"data.csv": CSV, "notes/readme.txt": "caf\u00e9"}

    result = await sandbox.run("python", code, files=files)

    assert (result.status, result.stdout) == ("ok", "0o444\nrefused\n"), result
    assert result.artifacts == (Artifact(name="notes/mine.txt", data=b"made"),)


async def test_a_file_value_must_be_bytes_or_str(sandbox: Sandbox) -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        await sandbox.run("python", "pass", files={"x": 3})  # type: ignore[dict-item]


async def test_the_pool_forwards_binary_files_and_returns_artifacts(sandbox: Sandbox) -> None:
    pool = SandboxPool(sandbox, size=1)
    code = "open('copy.bin', 'wb').write(open('in.bin', 'rb').read()[::-1])"

    result = await pool.run("python", code, files={"in.bin": b"\x00\x01\xff"})

    assert result.artifacts == (Artifact(name="copy.bin", data=b"\xff\x01\x00"),), result


async def test_caches_dot_files_and_deep_files_are_not_artifacts(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "def write(path):\n"
        "    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)\n"
        "    open(path, 'w').write(path)\n"
        "for path in ['.hidden', '.config/matplotlib/rc', '.cache/x/y', '__pycache__/m.pyc',\n"
        "             'node_modules/left-pad/index.js', 'out/.tmp/part', 'out/__pycache__/m',\n"
        "             'a/b/c/d/too-deep.txt', 'bad\\nname.txt', 'out/kept.txt',\n"
        "             'a/b/c/deep.txt']:\n"
        "    write(path)\n"
    )

    result = await sandbox.run("python", code)

    assert result.status == "ok", result
    assert names(result) == ["a/b/c/deep.txt", "out/kept.txt"]
    assert result.artifacts_left == 0


async def test_links_and_fifos_are_skipped_without_hanging(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd')\nos.symlink('/etc', 'etc')\n"
        "os.symlink('/proc/self/fd/0', 'stdin')\nos.mkfifo('pipe')\nos.mkdir('sub')\n"
        "os.mkfifo('sub/pipe')\nos.link('data.txt', 'hard.txt')\n"
        "open('real.txt', 'w').write('real')\n"
    )

    async with asyncio.timeout(20):
        result = await sandbox.run("python", code, files={"data.txt": "input"})

    assert result.status == "ok", result
    # a hard link to an input is a file the run made (its bytes were the run's anyway)
    assert result.artifacts == (
        Artifact(name="hard.txt", data=b"input"),
        Artifact(name="real.txt", data=b"real"),
    )


async def test_past_the_count_the_rest_is_counted(sandbox: Sandbox) -> None:
    code = "for i in range(10):\n    open(f'f{i:02}.txt', 'w').write(str(i))\n"

    result = await sandbox.run("python", code)

    assert names(result) == [f"f{i:02}.txt" for i in range(MAX_ARTIFACTS)]  # 8
    assert result.artifacts_left == 10 - MAX_ARTIFACTS


async def test_past_the_byte_budget_the_rest_is_counted(sandbox: Sandbox) -> None:
    code = (
        "open('a-big.bin', 'wb').write(b'x' * (9 * 1024 * 1024))\n"
        "open('b-half.bin', 'wb').write(b'y' * (5 * 1024 * 1024))\n"
        "open('c-half.bin', 'wb').write(b'z' * (5 * 1024 * 1024))\n"
        "open('d-small.txt', 'w').write('small')\n"
    )
    limits = Limits(disk=64 * MiB, file_size=32 * MiB)

    result = await sandbox.run("python", code, limits=limits)

    assert result.status == "ok", result
    assert names(result) == ["b-half.bin", "d-small.txt"]  # a file too large is passed over
    assert result.artifacts[0].data == b"y" * (5 * MiB)
    assert sum(item.size for item in result.artifacts) <= MAX_ARTIFACT_BYTES  # 8 MiB
    assert result.artifacts_left == 2


async def test_a_failed_run_keeps_what_it_wrote(sandbox: Sandbox) -> None:
    code = "open('partial.csv', 'w').write('1,2\\n')\nraise SystemExit(1)\n"

    result = await sandbox.run("python", code)

    assert (result.status, result.exit_code) == ("failed", 1), result
    assert result.artifacts == (Artifact(name="partial.csv", data=b"1,2\n"),)


async def test_a_run_killed_at_a_limit_keeps_what_it_wrote(
    sandbox: Sandbox, no_leftovers: None
) -> None:
    code = "import time\nopen('log.txt', 'w').write('started')\ntime.sleep(30)\n"

    result = await sandbox.run("python", code, limits=Limits(wall_time=1.0))

    assert (result.status, result.limit_hit) == ("limit", "wall_time"), result
    assert result.artifacts == (Artifact(name="log.txt", data=b"started"),)


async def test_unit_test_runs_collect_nothing(sandbox: Sandbox) -> None:
    tests = (
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_it(self):\n        open('made.txt', 'w').write('x')\n"
    )

    result = await sandbox.run_tests("python", "pass\n", tests)

    assert (result.status, result.artifacts, result.artifacts_left) == ("ok", (), 0), result


@pytest.mark.parametrize("language", ["c", "cpp", "go", "rust", "java"])
async def test_a_compiled_program_returns_its_files_not_its_build(
    sandbox: Sandbox, language: str
) -> None:
    if (missing := TOOLCHAINS[language].missing()) is not None:
        pytest.skip(missing)
    code = {
        "c": '#include <stdio.h>\nint main(void) {\n  FILE *f = fopen("result.txt", "w");\n'
        '  fputs("42", f);\n  return fclose(f);\n}\n',
        "cpp": '#include <fstream>\nint main() { std::ofstream("result.txt") << "42"; }\n',
        "go": 'package main\nimport "os"\n'
        'func main() { os.WriteFile("result.txt", []byte("42"), 0o644) }\n',
        "rust": 'fn main() { std::fs::write("result.txt", "42").unwrap(); }\n',
        "java": "public class Main { public static void main(String[] a) throws Exception {\n"
        '  java.nio.file.Files.writeString(java.nio.file.Path.of("result.txt"), "42"); } }\n',
    }[language]

    result = await sandbox.run(language, code)

    assert result.status == "ok", result
    assert result.artifacts == (Artifact(name="result.txt", data=b"42"),)


async def test_runs_leave_no_descriptor_open(sandbox: Sandbox) -> None:
    await sandbox.run("python", "open('x', 'w').write('x')")  # anything opened once, lazily
    before = open_fds()

    await sandbox.run("python", "open('x', 'w').write('x')")
    await sandbox.run("python", "import time\ntime.sleep(9)", limits=Limits(wall_time=0.5))
    task = asyncio.create_task(sandbox.run("python", "import time\ntime.sleep(9)"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # a worker thread may still be closing what it held
        if open_fds() == before:
            break
        await asyncio.sleep(0.02)

    assert open_fds() == before


# -- the parts, without a sandbox -------------------------------------------------------------


def test_collect_reads_a_directory_by_its_fd(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("input")
    (tmp_path / "z.txt").write_text("z")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"\x00")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "z.txt")
    (tmp_path / "dirlink").symlink_to(tmp_path / "d")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = collect(fd, inputs={"in.txt"})
    finally:
        os.close(fd)

    assert [(item.name, item.data) for item in found.artifacts] == [("d/a.bin", b"\x00"),
                                                                     ("z.txt", b"z")]  # fmt: skip
    assert found.left == 0


async def test_a_process_that_is_no_sandbox_is_never_held() -> None:
    # its root is the host's: never "ready"; the wait ends when the process does
    proc = await asyncio.create_subprocess_exec("sleep", "0.3")
    pidfd = os.pidfd_open(proc.pid)
    try:
        work = WorkDir("/tmp")
        async with asyncio.timeout(1.5):
            assert not await work.hold(proc.pid, pidfd)
        assert not work.held
    finally:
        os.close(pidfd)
        await proc.wait()


async def test_closing_a_work_dir_ends_its_wait() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "5")
    pidfd = os.pidfd_open(proc.pid)
    try:
        work = WorkDir("/tmp")
        waiting = asyncio.create_task(work.hold(proc.pid, pidfd))
        await asyncio.sleep(0.05)
        work.close()
        async with asyncio.timeout(0.5):
            assert not await waiting
    finally:
        proc.kill()
        await proc.wait()
        os.close(pidfd)
