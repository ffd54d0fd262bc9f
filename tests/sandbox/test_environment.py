"""The run environment: prepared once from local packages (offline), then usable in every run.

The packages are made here - a wheel written by hand, an npm tarball made by ``npm pack`` - and
installed with ``--no-index --find-links`` / ``--offline``: no test reaches a registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from sandbox import RunEnvironment, Sandbox, Settings, SetupError, prepare
from sandbox.environment import default_environment_dir, missing_package
from sandbox.toolchains import resolve_program


def make_wheel(directory: Path, name: str, version: str, module_source: str) -> Path:
    """A pure-Python wheel of one module, written as the wheel format says (PEP 427)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: codethread-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
            wheel.writestr(member, data)
        record.append(f"{dist_info}/RECORD,,")
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def wheels(shared_tmp: Path) -> Path:
    directory = shared_tmp / "wheels"
    directory.mkdir()
    make_wheel(directory, "ctgreet", "1.2.3", "def greet(name):\n    return f'hi {name}'\n")
    return directory


@pytest.fixture
def python3() -> str:
    found = resolve_program("python3")
    if found is None:
        pytest.skip("no python3 under /usr")
    return found


def builds(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("env-"))


def offline(wheels: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheels)]


async def test_prepare_then_every_run_imports_it(
    sandbox: Sandbox, shared_tmp: Path, wheels: Path, python3: str
) -> None:
    settings = Settings(python_packages=("ctgreet",), environment_dir=shared_tmp / "env")

    environment = prepare(settings, python3=python3, pip_options=offline(wheels))

    assert dict(environment.python_packages) == {"ctgreet": "1.2.3"}
    assert environment.python_dir is not None and environment.node_modules is None
    code = "import sys, ctgreet\nprint(ctgreet.greet('there'), sys.prefix)\n"
    boxed = Sandbox(environment_dir=settings.directory)
    result = await boxed.run("python", code)
    assert result.stdout == "hi there /venv\n", result  # the venv's python, read-only
    write = await boxed.run("python", "open('/venv/x', 'w')")
    assert "Read-only file system" in write.stderr
    assert boxed.environment() == environment
    assert (await sandbox.run("python", code)).status == "failed"  # only where it is bound


async def test_a_new_setup_replaces_the_old_one_at_once(
    sandbox: Sandbox, shared_tmp: Path, wheels: Path, python3: str
) -> None:
    settings = Settings(python_packages=("ctgreet",), environment_dir=shared_tmp / "env")
    first = prepare(settings, python3=python3, pip_options=offline(wheels))
    boxed = Sandbox(environment_dir=settings.directory)
    assert boxed.environment() == first
    make_wheel(wheels, "ctgreet", "2.0.0", "def greet(name):\n    return f'hello {name}'\n")

    second = prepare(settings, python3=python3, pip_options=offline(wheels))

    assert dict(second.python_packages) == {"ctgreet": "2.0.0"}
    assert boxed.environment() == second  # a running bot picks it up for its next run
    result = await boxed.run("python", "import ctgreet\nprint(ctgreet.greet('x'))")
    assert result.stdout == "hello x\n", result
    assert len(builds(settings.directory)) == 2  # the current one, the one it replaced


def test_a_failed_setup_keeps_the_current_environment(
    shared_tmp: Path, wheels: Path, python3: str
) -> None:
    settings = Settings(python_packages=("ctgreet",), environment_dir=shared_tmp / "env")
    good = prepare(settings, python3=python3, pip_options=offline(wheels))
    broken = Settings(python_packages=("no-such-package",), environment_dir=settings.directory)

    with pytest.raises(SetupError, match="pip install failed"):
        prepare(broken, python3=python3, pip_options=offline(wheels))

    assert RunEnvironment.load(settings.directory) == good
    assert len(builds(settings.directory)) == 1


def test_files_are_readable_by_the_runs_users(shared_tmp: Path, wheels: Path, python3: str) -> None:
    os.umask(old := os.umask(0o077))  # a private umask: setup must still open the files up
    try:
        os.umask(0o077)
        settings = Settings(python_packages=("ctgreet",), environment_dir=shared_tmp / "env")
        environment = prepare(settings, python3=python3, pip_options=offline(wheels))
    finally:
        os.umask(old)
    assert environment.directory is not None
    for directory, _, names in os.walk(environment.directory):
        assert os.stat(directory).st_mode & 0o755 == 0o755, directory
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                assert os.stat(path).st_mode & 0o444 == 0o444, path


@pytest.fixture
def npm_package(shared_tmp: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    source = shared_tmp / "ctshout"
    source.mkdir()
    (source / "package.json").write_text(json.dumps({"name": "ctshout", "version": "0.4.0"}))
    (source / "index.js").write_text("module.exports = (s) => s.toUpperCase() + '!';\n")
    done = subprocess.run(
        [npm, "pack", "--offline", "--silent"], cwd=source, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return source / done.stdout.strip().splitlines()[-1]


async def test_node_packages_are_found_from_the_work_dir(
    sandbox: Sandbox, shared_tmp: Path, npm_package: Path, python3: str
) -> None:
    settings = Settings(node_packages=(str(npm_package),), environment_dir=shared_tmp / "env")

    environment = prepare(settings, python3=python3, npm_options=["--offline"])

    assert dict(environment.node_packages) == {"ctshout": "0.4.0"}
    boxed = Sandbox(environment_dir=settings.directory)
    result = await boxed.run("javascript", "console.log(require('ctshout')('hey'))")
    assert result.stdout == "HEY!\n", result


async def test_a_missing_package_says_how_to_add_it(sandbox: Sandbox) -> None:
    result = await sandbox.run("python", "import ctnotthere.sub\n")

    assert result.status == "failed"
    assert result.message == (
        "ctnotthere is not installed in the sandbox; add ctnotthere to [sandbox] "
        "python_packages in the config and run `codethread sandbox setup`."
    )


def test_missing_package_messages() -> None:
    pil = missing_package("python", "ModuleNotFoundError: No module named 'PIL'")
    assert pil is not None and pil.startswith("The module PIL (package pillow) is not installed")
    node = missing_package("javascript", "Error: Cannot find module 'lodash/fp'\nRequire stack:")
    assert node is not None and "add lodash to [sandbox] node_packages" in node
    assert missing_package("javascript", "Error: Cannot find module './helper'") is None
    own = "ModuleNotFoundError: No module named 'helper'"
    assert missing_package("python", own, ["snippet.py", "helper.py"]) is None
    assert missing_package("python", "NameError: name 'x' is not defined") is None
    assert missing_package("c", "ModuleNotFoundError: No module named 'x'") is None


def test_settings_from_a_table() -> None:
    settings = Settings.parse({"python_packages": ["numpy", "pandas>=2"], "node_packages": []})
    assert settings.python_packages == ("numpy", "pandas>=2")
    assert settings.directory == default_environment_dir()
    assert Settings.parse({"environment_dir": "/srv/env"}).directory == Path("/srv/env")
    with pytest.raises(ValueError, match="python_packages must be a list"):
        Settings.parse({"python_packages": "numpy"})
    with pytest.raises(ValueError, match="no key 'pyhton_packages'"):
        Settings.parse({"pyhton_packages": []})


def test_the_default_directory_is_reachable_by_the_runs_users() -> None:
    if os.geteuid() == 0:  # root's home is private; the runs' uids must reach the venv
        assert default_environment_dir() == Path("/var/lib/codethread/sandbox")
    else:
        assert default_environment_dir().name == "sandbox"
