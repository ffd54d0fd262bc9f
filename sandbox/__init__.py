"""Runs a snippet under bubblewrap with hard limits.

:class:`Sandbox` runs one snippet (or its unit tests) and returns a :class:`RunResult`;
:class:`SandboxPool` bounds how many run at once and queues the rest. What is isolated is listed
in :mod:`sandbox.command`, the limits and their defaults in :mod:`sandbox.limits`, the languages
in :mod:`sandbox.toolchains`.

This package never imports ``bot``, ``engines`` or ``storage``.
"""

from __future__ import annotations

from sandbox.limits import DEFAULT_COMPILE_LIMITS, DEFAULT_LIMITS, Limits
from sandbox.pool import OnQueued, SandboxPool
from sandbox.results import FIXABLE, LimitHit, RunResult, RunStatus
from sandbox.runner import Sandbox
from sandbox.toolchains import TOOLCHAINS, Toolchain

__all__ = [
    "DEFAULT_COMPILE_LIMITS",
    "DEFAULT_LIMITS",
    "FIXABLE",
    "TOOLCHAINS",
    "LimitHit",
    "Limits",
    "OnQueued",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxPool",
    "Toolchain",
]
