"""aiosqlite store of sessions, their versions, runs and failed turns: schema, migrations, SQL.

Typical use::

    async with await Store.open(path) as store:
        session = await store.create_session(key=key, owner=..., language=..., model=..., title=...)
        version = await store.add_version(session.id, request=..., code=..., ...)
        run = await store.add_run(version.id, kind="run", status="ok", ...)
        failure = await store.add_failure(session.id, request=..., message=...)
        retry = await store.take_failure(session.id)  # None: already retried
"""

from __future__ import annotations

from .errors import SessionExists, SessionGone, StoreError, VersionNotFound
from .migrations import migrate
from .records import (
    Failure,
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
    "Failure",
    "Run",
    "RunKind",
    "RunLimit",
    "RunStatus",
    "Session",
    "SessionExists",
    "SessionGone",
    "SessionKey",
    "Store",
    "StoreError",
    "Version",
    "VersionNotFound",
    "VersionStatus",
    "migrate",
]
