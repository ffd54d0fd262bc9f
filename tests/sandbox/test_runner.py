"""Normal runs in every language present, tests, compile errors, and the unavailable paths."""

from __future__ import annotations

import asyncio
import glob
import os
import stat
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.languages import LANGUAGES
from sandbox import TOOLCHAINS, Limits, Sandbox
from sandbox.command import Programs
from sandbox.runner import MAX_FILES, _collect
from sandbox.users import DEFAULT_UIDS

HELLO = {
    "python": "import sys\nprint('hello', input())\nsys.exit(3)\n",
    "javascript": (
        "const line = require('fs').readFileSync(0, 'utf8').trim();\n"
        "console.log('hello', line);\nprocess.exit(3);\n"
    ),
    "bash": 'read line\necho hello "$line"\nexit 3\n',
    "c": (
        "#include <stdio.h>\nint main(void) {\n  char line[64];\n"
        "  if (!fgets(line, sizeof line, stdin)) return 1;\n"
        '  printf("hello %s", line);\n  return 3;\n}\n'
    ),
    "cpp": (
        "#include <iostream>\n#include <string>\nint main() {\n  std::string line;\n"
        '  std::getline(std::cin, line);\n  std::cout << "hello " << line << std::endl;\n'
        "  return 3;\n}\n"
    ),
    "java": (
        "import java.util.Scanner;\npublic class Greeter {\n"
        "  public static void main(String[] args) {\n"
        '    System.out.println("hello " + new Scanner(System.in).nextLine());\n'
        "    System.exit(3);\n  }\n}\n"
    ),
    "go": (
        'package main\nimport ("bufio"; "fmt"; "os")\nfunc main() {\n'
        "  line, _ := bufio.NewReader(os.Stdin).ReadString('\\n')\n"
        '  fmt.Print("hello ", line)\n  os.Exit(3)\n}\n'
    ),
    "rust": (
        "use std::io::Read;\nfn main() {\n  let mut s = String::new();\n"
        "  std::io::stdin().read_to_string(&mut s).unwrap();\n"
        '  print!("hello {}", s);\n  std::process::exit(3);\n}\n'
    ),
    "typescript": (
        "const line: string = require('fs').readFileSync(0, 'utf8').trim();\n"
        "console.log('hello', line);\nprocess.exit(3);\n"
    ),
}


def test_every_language_has_a_hello_and_uses_the_bots_names() -> None:
    bot_names = {language.name for language in LANGUAGES}
    assert set(TOOLCHAINS) <= bot_names
    assert {"python", "javascript", "bash", "c", "cpp", "go", "rust", "java"} <= set(TOOLCHAINS)
    assert set(HELLO) == set(TOOLCHAINS)


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_with_stdin_and_exit_code(
    sandbox: Sandbox, language: str, no_leftovers: None
) -> None:
    if (missing := TOOLCHAINS[language].missing()) is not None:
        pytest.skip(missing)

    result = await sandbox.run(language, HELLO[language], stdin="world\n")

    assert result.stdout == "hello world\n", result
    assert (result.status, result.exit_code, result.limit_hit) == ("failed", 3, None), result
    assert result.message == "Exited with status 3."
    if sandbox.cgroups is not None:  # what the run's cgroup was charged (not shared libraries)
        assert result.peak_memory_kb is not None and 100 < result.peak_memory_kb < 400_000
    if sandbox.cgroups is not None and sandbox.cgroups.version == 2:
        assert result.cpu_ms is not None
    assert result.duration_ms >= 1
    if TOOLCHAINS[language].compile is not None:
        assert result.compile_ms > 0


async def test_ok_run(sandbox: Sandbox) -> None:
    result = await sandbox.run("python", "print(sum(range(10)))")

    assert (result.status, result.exit_code, result.stdout, result.stderr) == ("ok", 0, "45\n", "")
    assert result.passed
    # the toolchains every supported host has (the README's list; others are optional)
    core = ("python", "javascript", "bash", "c", "cpp")
    assert [name for name in core if TOOLCHAINS[name].missing() is not None] == []
    assert sandbox.available()


async def test_extra_files_sit_next_to_the_snippet(sandbox: Sandbox) -> None:
    code = "import helper\nprint(helper.twice(21), open('data/in.txt').read())"
    files = {"helper.py": "def twice(x):\n    return 2 * x\n", "data/in.txt": "payload"}

    result = await sandbox.run("python", code, files=files)

    assert result.stdout == "42 payload\n", result


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", ".hidden", "a//b", "a/../../b", ""])
async def test_file_names_outside_the_work_dir_are_refused(sandbox: Sandbox, name: str) -> None:
    with pytest.raises(ValueError, match="Invalid file name"):
        await sandbox.run("python", "pass", files={name: "x"})


async def test_c_compile_error(sandbox: Sandbox, no_leftovers: None) -> None:
    result = await sandbox.run("c", "int main(void) { return undefined_name; }\n")

    assert result.status == "compile_error", result
    assert "undefined_name" in result.compile_output
    assert "error" in result.compile_output
    assert result.stdout == result.stderr == ""
    assert result.exit_code is None
    assert result.message == "Compilation failed."


@pytest.mark.usefixtures("sandbox")  # skips where no sandbox works
async def test_compile_dir_is_private_and_removed(shared_tmp: Path) -> None:
    # A scratch dir of this test's own: another test run on the host compiles into /tmp too.
    sandbox = Sandbox(scratch_dir=str(shared_tmp))
    pattern = str(shared_tmp / "codethread-sandbox-*" / "*")
    before = set(glob.glob(pattern))
    code = "#include <unistd.h>\nint main(void) { sleep(1); return 0; }\n"
    task = asyncio.create_task(sandbox.run("c", code))
    seen: set[str] = set()
    for _ in range(200):
        await asyncio.sleep(0.01)
        seen = set(glob.glob(pattern)) - before
        if seen:
            break
    assert len(seen) == 1
    path = seen.pop()
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o711  # no one else lists it
    if os.geteuid() == 0:
        assert info.st_uid in DEFAULT_UIDS
    result = await task

    assert result.status == "ok", result
    assert set(glob.glob(pattern)) == before


async def test_java_file_is_named_after_its_public_class(sandbox: Sandbox) -> None:
    if (missing := TOOLCHAINS["java"].missing()) is not None:
        pytest.skip(missing)
    code = (
        "import java.util.*; public final class Sums {\n"
        "  public static void main(String[] a) { System.out.println(List.of(6)); } }"
    )

    result = await sandbox.run("java", code)

    assert (result.status, result.stdout) == ("ok", "[6]\n"), result


# -- tests -----------------------------------------------------------------------------------

PY_CODE = "def add(a, b):\n    return a + b\n"
PY_TESTS = (
    "import unittest\nfrom snippet import add\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), {expected})\n"
)
JS_CODE = "module.exports.add = (a, b) => a + b;\n"
JS_TESTS = (
    "const test = require('node:test');\nconst assert = require('node:assert');\n"
    "const { add } = require('./snippet.js');\n"
    "test('add', () => { assert.strictEqual(add(2, 3), {expected}); });\n"
)


@pytest.mark.parametrize(("language", "code", "tests"), [
    ("python", PY_CODE, PY_TESTS), ("javascript", JS_CODE, JS_TESTS),
])  # fmt: skip
async def test_unit_tests_pass_and_fail(
    sandbox: Sandbox, language: str, code: str, tests: str
) -> None:
    passed = await sandbox.run_tests(language, code, tests.replace("{expected}", "5"))
    failed = await sandbox.run_tests(language, code, tests.replace("{expected}", "6"))

    assert passed.status == "ok", passed
    assert failed.status == "failed", failed
    assert failed.exit_code not in (0, None)
    assert "6" in failed.stdout + failed.stderr


async def test_a_test_file_without_tests_does_not_pass(sandbox: Sandbox) -> None:
    result = await sandbox.run_tests("python", PY_CODE, "import snippet\n")

    assert (result.status, result.message) == ("failed", "No test ran."), result


async def test_tests_in_other_languages_are_unavailable(sandbox: Sandbox) -> None:
    result = await sandbox.run_tests("c", "int main(void){return 0;}", "")

    assert result.status == "unavailable"
    assert "only for python, javascript" in result.message


# -- unavailable -----------------------------------------------------------------------------


async def test_unknown_or_missing_language_is_unavailable(sandbox: Sandbox) -> None:
    unknown = await sandbox.run("cobol", "DISPLAY 'HI'.")

    assert unknown.status == "unavailable"
    assert "'cobol'" in unknown.message and "python" in unknown.message


async def test_missing_toolchain_says_so() -> None:
    toolchain = TOOLCHAINS["python"]
    broken = type(toolchain)(
        language="python", label="Python", source="x.py", run=("x",), requires=("no-such-tool",)
    )
    sandbox = Sandbox(toolchains={"python": broken})
    reason = await sandbox.check()
    if reason is not None:
        pytest.skip(reason)

    result = await sandbox.run("python", "print(1)")

    assert result.status == "unavailable"
    assert result.message.startswith("Python is not installed on this machine (no-such-tool")


async def test_without_bwrap_nothing_runs() -> None:
    programs = Programs(bwrap=None, prlimit="/usr/bin/prlimit", setpriv=None, python3=None)
    sandbox = Sandbox(programs=programs)

    reason = await sandbox.check()
    result = await sandbox.run("python", "print(1)")

    assert reason is not None and "bwrap (Debian package bubblewrap)" in reason
    assert (result.status, result.message) == ("unavailable", reason)
    assert not sandbox.available()


async def test_when_bwrap_cannot_create_namespaces_nothing_runs(shared_tmp: Path) -> None:
    fake = shared_tmp / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    programs = Programs(
        bwrap=str(fake), prlimit="/usr/bin/prlimit", setpriv="/usr/bin/setpriv",
        python3="/usr/bin/python3",
    )  # fmt: skip
    marker = shared_tmp / "ran"
    sandbox = Sandbox(programs=programs, uids=[470_099] if os.geteuid() == 0 else None)

    reason = await sandbox.check()
    result = await sandbox.run("bash", f"touch {marker}")

    assert reason is not None
    assert "could not create a sandbox (bwrap: No permissions to creating new namespace)" in reason
    assert "user namespaces" in reason
    assert result.status == "unavailable"
    assert not marker.exists()


async def test_a_given_limit_is_raised_only_to_the_runtimes_minimum(sandbox: Sandbox) -> None:
    result = await sandbox.run(
        "javascript", "console.log('ok')", limits=Limits(memory=128 * 1024 * 1024)
    )

    assert result.status == "ok", result


def test_compiler_output_is_copied_without_following_links(shared_tmp: Path) -> None:
    secret = shared_tmp / "secret"
    secret.write_text("host secret")
    build = shared_tmp / "build"
    (build / "pkg").mkdir(parents=True)
    (build / "snippet").write_bytes(b"\x7fELF")
    (build / "snippet").chmod(0o755)
    (build / "pkg" / "A.class").write_bytes(b"\xca\xfe")
    (build / "link").symlink_to(secret)
    (build / "pkg" / "dirlink").symlink_to(shared_tmp)
    (build / ".hidden").write_text("x")

    with ExitStack() as stack:
        found = _collect(str(build), stack, budget=1 << 20)
        assert not isinstance(found, str)
        names = {item.name: item.executable for item in found}

    assert names == {"snippet": True, "pkg/A.class": False}


def test_too_much_compiler_output_is_refused(shared_tmp: Path) -> None:
    for index in range(MAX_FILES + 1):
        (shared_tmp / f"f{index}").write_text("x")

    with ExitStack() as stack:
        assert "more than 32 files" in str(_collect(str(shared_tmp), stack, budget=1 << 20))
    for index in range(1, MAX_FILES + 1):
        (shared_tmp / f"f{index}").unlink()
    (shared_tmp / "f0").write_text("x" * 100)
    with ExitStack() as stack:
        assert "does not fit" in str(_collect(str(shared_tmp), stack, budget=10))
