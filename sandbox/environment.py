"""The run environment: Python and Node packages every run can use, prepared once, not per run.

``codethread sandbox setup`` calls :func:`prepare` with the ``[sandbox]`` table's lists
(:class:`Settings`)::

    [sandbox]
    python_packages = ["numpy", "pandas", "matplotlib"]
    node_packages = ["lodash"]
    environment_dir = "/srv/codethread/sandbox"   # optional; see default_environment_dir()

It builds, in the environment directory:

- ``python/``: a venv of the sandbox's own ``python3`` (the system one under ``/usr``), without
  pip, into which the bot's pip installs the packages (``pip --python``: wheels for the venv's
  interpreter, whatever Python the bot itself runs on);
- ``node/node_modules``: ``npm install`` of the Node packages;
- ``environment.json``: what was asked for and what got installed, with versions.

Every run then sees them read-only: the venv at ``/venv``, with ``/venv/bin`` first on ``PATH``
so that ``python3`` is the venv's (its ``site-packages`` after the standard library, ``.pth``
files processed, as in any venv); ``node_modules`` at ``/node_modules``, which Node's lookup
reaches from any directory (``require``, ``import`` and ``tsc`` alike; ``NODE_PATH`` would serve
``require`` only). Nothing else of the environment changes.

A new build goes into a fresh ``env-*`` directory and replaces the ``current`` link in one
rename, so a running bot never sees half an environment: its next run uses the new one. The
files are made readable by everyone (a root bot's runs execute as other users), and the
directory must be reachable by them: :func:`default_environment_dir` is therefore
``/var/lib/codethread/sandbox`` for root (whose home is private) and the user's data directory
(``~/.local/share/codethread/sandbox``) otherwise.

A run that fails on a missing package gets a message that says how to add it
(:func:`missing_package`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "NODE_MOUNT",
    "PYTHON_MOUNT",
    "RunEnvironment",
    "Settings",
    "SetupError",
    "default_environment_dir",
    "missing_package",
    "prepare",
]

#: Where the Python venv and the Node packages appear inside every run.
PYTHON_MOUNT = "/venv"
NODE_MOUNT = "/node_modules"

_MANIFEST = "environment.json"
_CURRENT = "current"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EMPTY: Mapping[str, str] = MappingProxyType({})


def default_environment_dir() -> Path:
    """``/var/lib/codethread/sandbox`` for root, else ``<user data dir>/codethread/sandbox``."""
    if os.geteuid() == 0:
        return Path("/var/lib/codethread/sandbox")
    import platformdirs  # only here: the sandbox itself needs no third-party package

    return platformdirs.user_data_path("codethread") / "sandbox"


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"[sandbox] {key} must be a list of package names, not {value!r}")
    return tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The ``[sandbox]`` table: which packages to prepare, and where."""

    python_packages: tuple[str, ...] = ()  # pip requirement strings: "numpy", "pandas>=2"
    node_packages: tuple[str, ...] = ()  # npm package specs: "lodash", "@scope/pkg@1"
    environment_dir: Path | None = None  # None: default_environment_dir()

    def __str__(self) -> str:
        return (
            f"python_packages={list(self.python_packages)} "
            f"node_packages={list(self.node_packages)} directory={self.directory}"
        )

    @property
    def directory(self) -> Path:
        return self.environment_dir or default_environment_dir()

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> Settings:
        """The settings of a TOML table; ValueError names the bad key."""
        if not isinstance(table, Mapping):
            raise ValueError("[sandbox] must be a table")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key in ("python_packages", "node_packages"):
                values[key] = _strings(key, value)
            elif key == "environment_dir":
                if not isinstance(value, str) or not value:
                    raise ValueError(f"[sandbox] environment_dir must be a path, not {value!r}")
                values[key] = Path(value).expanduser()
            else:
                raise ValueError(
                    f"[sandbox] has no key {key!r}; known keys: python_packages, node_packages, "
                    "environment_dir"
                )
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnvironment:
    """A prepared environment: where it is on the host and which packages it holds.

    ``python_packages`` / ``node_packages``: each package that was asked for, by name, with
    its installed version (the dependencies they pulled in are usable too, but not listed).
    """

    directory: str | None = None  # the env-* directory; None: nothing prepared
    python_packages: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    node_packages: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def packages_for(self, language: str) -> Mapping[str, str]:
        """The prepared packages a ``language`` snippet can import (name -> version)."""
        if language == "python":
            return self.python_packages
        if language in ("javascript", "typescript"):
            return self.node_packages
        return _EMPTY

    @property
    def python_dir(self) -> str | None:
        """The venv on the host, if Python packages were prepared."""
        if self.directory is None or not self.python_packages:
            return None
        return os.path.join(self.directory, "python")

    @property
    def node_modules(self) -> str | None:
        """The node_modules directory on the host, if Node packages were prepared."""
        if self.directory is None or not self.node_packages:
            return None
        return os.path.join(self.directory, "node", "node_modules")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> RunEnvironment:
        """The environment ``prepare`` left in ``directory`` (an empty one if there is none)."""
        current = os.path.join(directory, _CURRENT)
        try:
            target = os.path.realpath(current, strict=True)
            with open(os.path.join(target, _MANIFEST)) as file:
                manifest = json.load(file)
            python = manifest["python"]["installed"]
            node = manifest["node"]["installed"]
        except (OSError, ValueError, KeyError, TypeError):
            return cls()
        return cls(
            directory=target,
            python_packages=MappingProxyType(dict(python)),
            node_packages=MappingProxyType(dict(node)),
        )


class SetupError(Exception):
    """Preparing the environment failed; the message says which step and why."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    if match is None:
        raise SetupError(f"Not a Python package name: {requirement!r}")
    return match.group(0)


def _run(argv: Sequence[str], step: str, log: Callable[[str], None], **kwargs: Any) -> None:
    log(f"$ {' '.join(argv)}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    except OSError as error:
        raise SetupError(f"{step}: cannot run {argv[0]} ({error.strerror})") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        raise SetupError(f"{step} failed: {detail}")


def _python_versions(venv: str, wanted: Sequence[str]) -> dict[str, str]:
    import importlib.metadata

    paths = [str(p) for p in Path(venv).glob("lib/python3*/site-packages")]
    installed = {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions(path=paths)
    }
    found = {}
    for requirement in wanted:
        name = _requirement_name(requirement)
        version = installed.get(_canonical(name))
        if version is None:
            raise SetupError(f"pip reported success, but {name} is not in the venv")
        found[name] = version
    return found


def _node_versions(prefix: str) -> dict[str, str]:
    """name -> version of each package asked for: the dependencies npm wrote to package.json
    (a tarball's or a folder's real name, too), versions from what it installed."""
    try:
        with open(os.path.join(prefix, "package.json")) as file:
            wanted = json.load(file).get("dependencies", {})
        found = {}
        for name in wanted:
            with open(os.path.join(prefix, "node_modules", name, "package.json")) as file:
                found[name] = str(json.load(file).get("version", "?"))
    except (OSError, ValueError, AttributeError) as error:
        raise SetupError(f"npm reported success, but its packages are missing ({error})") from None
    return found


def _open_up(root: str) -> None:
    """Directories 0755 and files a+r (a+x where the owner may execute): for the runs' uids."""
    for directory, _, names in os.walk(root):
        os.chmod(directory, 0o755)
        for name in names:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                mode = info.st_mode | 0o444 | (0o111 if info.st_mode & 0o100 else 0)
                os.chmod(path, stat.S_IMODE(mode))


def prepare(
    settings: Settings,
    *,
    python3: str,
    pip_options: Sequence[str] = (),
    npm_options: Sequence[str] = (),
    npm: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> RunEnvironment:
    """Build the environment ``settings`` asks for and make it the current one.

    ``python3``: the interpreter runs use (the venv is made of it). ``pip_options`` /
    ``npm_options`` go to every install (``--no-index``, ``--find-links DIR``, ``--offline``).
    ``npm``: the npm program (default: found on the system PATH). ``log`` gets each command.
    Raises :class:`SetupError`; the current environment then stays as it was.
    """
    root = Path(settings.directory)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    build = root / f"env-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    build.mkdir()
    try:
        python: dict[str, str] = {}
        node: dict[str, str] = {}
        if settings.python_packages:
            venv = str(build / "python")
            _run([python3, "-m", "venv", "--without-pip", venv], "Creating the venv", log)
            pip = [sys.executable, "-m", "pip", "--python", os.path.join(venv, "bin", "python")]
            pip += ["install", "--no-input", "--disable-pip-version-check"]
            pip += ["--no-warn-script-location", *pip_options, *settings.python_packages]
            _run(pip, "pip install", log)
            python = _python_versions(venv, settings.python_packages)
        if settings.node_packages:
            program = npm or shutil.which("npm", path="/usr/local/bin:/usr/bin:/bin")
            if program is None:
                raise SetupError("node_packages are set, but npm is not installed (Debian: npm)")
            prefix = build / "node"
            prefix.mkdir()
            command = [program, "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
            command += ["--no-update-notifier", "--omit=dev", *npm_options]
            _run([*command, *settings.node_packages], "npm install", log)
            node = _node_versions(str(prefix))
        manifest = {
            "python": {"requested": list(settings.python_packages), "installed": python},
            "node": {"requested": list(settings.node_packages), "installed": node},
        }
        (build / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _open_up(str(build))
        link = root / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(build.name)
        old = _current(root)
        os.replace(link, root / _CURRENT)  # the one step that switches runs over
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    for entry in root.iterdir():  # earlier builds, except the one just replaced
        if entry.name.startswith("env-") and entry.name not in (build.name, old):
            shutil.rmtree(entry, ignore_errors=True)
    return RunEnvironment.load(root)


def _current(root: Path) -> str | None:
    try:
        return os.readlink(root / _CURRENT)
    except OSError:
        return None


#: import names whose package is called otherwise on PyPI
_PYPI_NAMES = MappingProxyType(
    {
        "PIL": "pillow",
        "sklearn": "scikit-learn",
        "skimage": "scikit-image",
        "cv2": "opencv-python-headless",
        "yaml": "pyyaml",
        "bs4": "beautifulsoup4",
        "dateutil": "python-dateutil",
        "dotenv": "python-dotenv",
        "Crypto": "pycryptodome",
        "attr": "attrs",
    }
)
_PY_MISSING = re.compile(r"ModuleNotFoundError: No module named '([A-Za-z_][\w.]*)'")
_NODE_MISSING = re.compile(r"Cannot find (?:module|package) '((?:@[\w.-]+/)?[\w][\w.-]*)[^']*'")


def missing_package(language: str, stderr: str, work_files: Sequence[str] = ()) -> str | None:
    """The message for a run that failed because a package is not in the environment, or None.

    ``work_files``: the names in the work dir (a missing module of the snippet's own is not
    a package).
    """
    if language == "python":
        found = _PY_MISSING.search(stderr)
        if found is None:
            return None
        module = found.group(1).split(".")[0]
        if f"{module}.py" in work_files or module in {name.split("/")[0] for name in work_files}:
            return None
        package = _PYPI_NAMES.get(module, module)
        what = module if package == module else f"The module {module} (package {package})"
        table = "python_packages"
    elif language in ("javascript", "typescript"):
        found = _NODE_MISSING.search(stderr)
        if found is None:
            return None
        package = what = found.group(1)
        table = "node_packages"
    else:
        return None
    return (
        f"{what} is not installed in the sandbox; add {package} to [sandbox] {table} in the "
        "config and run `codethread sandbox setup`."
    )
