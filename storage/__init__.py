"""aiosqlite store for sessions, their versions and runs: schema, migrations, queries.

Typical use::

    async with await Store.open(path) as store:
        session = await store.create_session(key=key, owner=..., language=..., model=..., title=...)
        version = await store.add_version(session.id, request=..., code=..., ...)
        run = await store.add_run(version.id, kind="run", status="ok", ...)
"""

from __future__ import annotations

from .errors import SessionExists, SessionNotFound, StoreError, VersionNotFound
from .migrations import migrate
from .records import (
    Run,
    RunKind,
    RunLimit,
    RunStatus,
    Session,
    SessionKey,
    Version,
    VersionStatus,
)
from .store import Store

__all__ = [
    "Run",
    "RunKind",
    "RunLimit",
    "RunStatus",
    "Session",
    "SessionExists",
    "SessionKey",
    "SessionNotFound",
    "Store",
    "StoreError",
    "Version",
    "VersionNotFound",
    "VersionStatus",
    "migrate",
]
