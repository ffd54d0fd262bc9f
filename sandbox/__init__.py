"""Runs a snippet under bubblewrap with hard limits.

This package never imports ``bot``, ``engines`` or ``storage``.
"""

from __future__ import annotations

from sandbox.results import LimitHit, RunResult, RunStatus

__all__ = ["LimitHit", "RunResult", "RunStatus"]
