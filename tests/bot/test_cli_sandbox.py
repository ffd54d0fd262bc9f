"""``codethread sandbox setup`` and the ``[sandbox]`` table, offline (a wheel made here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from sandbox import RunEnvironment, Settings
from tests.sandbox.test_environment import make_wheel

ROOT = Path(__file__).resolve().parents[2]


def codethread(*args: str, config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODETHREAD_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


def test_setup_installs_the_configs_packages(tmp_path: Path) -> None:
    make_wheel(tmp_path, "ctgreet", "1.0.0", "X = 1\n")
    config = tmp_path / "config.toml"
    env_dir = tmp_path / "env"
    config.write_text(f'[sandbox]\npython_packages = ["ctgreet"]\nenvironment_dir = "{env_dir}"\n')

    done = codethread(
        "sandbox", "setup", "--no-index", "--find-links", str(tmp_path),
        config=config, home=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Python: ctgreet 1.0.0", f"Ready: {env_dir}"]
    assert "pip --python" in done.stderr  # each command, on stderr
    assert dict(RunEnvironment.load(env_dir).python_packages) == {"ctgreet": "1.0.0"}


def test_setup_failures_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[sandbox]\npython_packages = ["ctnothere"]\nenvironment_dir = "{tmp_path / "e"}"\n'
    )

    done = codethread("sandbox", "setup", "--no-index", config=config, home=tmp_path)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("Error: pip install failed: ")


def test_the_sandbox_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[sandbox]\npython_packages = ["numpy"]\nnode_packages = ["lodash"]\n')

    config = load_config({"CODETHREAD_CONFIG": str(path), "CODETHREAD_DB": "x.db"})

    assert config.sandbox == Settings(python_packages=("numpy",), node_packages=("lodash",))
    assert load_config({"CODETHREAD_DB": "x.db"}).sandbox == Settings()
    path.write_text('[sandbox]\nnode_packages = "lodash"\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[sandbox\] node_packages must be a list"):
        load_config({"CODETHREAD_CONFIG": str(path)})
