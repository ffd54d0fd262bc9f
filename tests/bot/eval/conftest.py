"""Fixtures of the eval tests: the real sandbox (skipped where bubblewrap cannot run), a config."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.config import Config
from sandbox import Sandbox

_REASON: list[str | None] = []


def _sandbox_reason() -> str | None:
    if not _REASON:
        _REASON.append(asyncio.run(Sandbox().check()))
    return _REASON[0]


@pytest.fixture
def sandbox_works() -> None:
    """Skip (or, with CODETHREAD_REQUIRE_SANDBOX=1, fail) where snippets cannot run."""
    reason = _sandbox_reason()
    if reason is not None:
        if os.environ.get("CODETHREAD_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"CODETHREAD_REQUIRE_SANDBOX=1 but: {reason}")
        pytest.skip(reason)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The user's settings as an eval sees them; its database must never be touched."""
    return Config(db_path=tmp_path / "user.db", model="openai:test-model", turn_timeout=10.0)
