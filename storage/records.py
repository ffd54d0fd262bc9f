"""Values the store hands out: plain frozen dataclasses, no connection attached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Session", "SessionKey", "Version", "VersionStatus"]

VersionStatus = Literal["ok", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionKey:
    """Where a session lives: a thread on a platform (``console`` uses a generated thread id)."""

    platform: str
    workspace: str
    channel: str
    thread: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: int
    key: SessionKey
    owner: str
    language: str
    model: str
    title: str
    created_at: float  # unix seconds
    updated_at: float
    version_count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    id: int
    session_id: int
    number: int  # 1, 2, 3 … within its session
    request: str  # the first prompt, or the feedback that produced this version
    code: str
    note: str  # the model's prose around the code block
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    status: VersionStatus
    created_at: float
