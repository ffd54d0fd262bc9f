"""Runs a snippet under bubblewrap with hard limits.

:class:`Sandbox` runs one snippet (or its unit tests) and returns a :class:`RunResult`;
:class:`SandboxPool` bounds how many run at once and queues the rest. What is isolated is listed
in :mod:`sandbox.command`, the limits and their defaults in :mod:`sandbox.limits`, the languages
in :mod:`sandbox.toolchains`, the memory cgroups in :mod:`sandbox.cgroups`, the files a run
makes (:class:`Artifact`) in :mod:`sandbox.artifacts`, and the prepared packages
(``codethread sandbox setup``) in :mod:`sandbox.environment`.

This package never imports ``bot``, ``engines`` or ``storage``. Its names are imported on
first use (PEP 562), so that reading the ``[sandbox]`` settings (``sandbox.environment``) costs
the CLI nothing of asyncio and subprocess.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.artifacts import MAX_ARTIFACT_BYTES, MAX_ARTIFACTS, Artifact
    from sandbox.cgroups import Cgroups
    from sandbox.environment import RunEnvironment, Settings, SetupError, prepare
    from sandbox.limits import DEFAULT_COMPILE_LIMITS, DEFAULT_LIMITS, Limits
    from sandbox.pool import OnQueued, SandboxPool
    from sandbox.results import FIXABLE, LimitHit, RunResult, RunStatus
    from sandbox.runner import Sandbox
    from sandbox.toolchains import TOOLCHAINS, Toolchain

_MODULES = {
    "sandbox.artifacts": ("MAX_ARTIFACTS", "MAX_ARTIFACT_BYTES", "Artifact"),
    "sandbox.cgroups": ("Cgroups",),
    "sandbox.environment": ("RunEnvironment", "Settings", "SetupError", "prepare"),
    "sandbox.limits": ("DEFAULT_COMPILE_LIMITS", "DEFAULT_LIMITS", "Limits"),
    "sandbox.pool": ("OnQueued", "SandboxPool"),
    "sandbox.results": ("FIXABLE", "LimitHit", "RunResult", "RunStatus"),
    "sandbox.runner": ("Sandbox",),
    "sandbox.toolchains": ("TOOLCHAINS", "Toolchain"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "DEFAULT_COMPILE_LIMITS",
    "DEFAULT_LIMITS",
    "FIXABLE",
    "MAX_ARTIFACTS",
    "MAX_ARTIFACT_BYTES",
    "TOOLCHAINS",
    "Artifact",
    "Cgroups",
    "LimitHit",
    "Limits",
    "OnQueued",
    "RunEnvironment",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxPool",
    "Settings",
    "SetupError",
    "Toolchain",
    "prepare",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
