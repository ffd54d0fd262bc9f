"""aiosqlite store of sessions and their versions, runs, files, failures: schema, migrations, SQL.

Typical use::

    async with await Store.open(path) as store:
        session = await store.create_session(key=key, owner=..., language=..., model=..., title=...)
        version = await store.add_version(session.id, request=..., code=..., ...)
        run = await store.add_run(version.id, kind="run", status="ok", ..., artifacts=[...])
        file = await store.add_file(session.id, "data.csv", b"a,b\n1,2\n")
        failure = await store.add_failure(session.id, request=..., message=...)
        retry = await store.take_failure(session.id)  # None: already retried
"""

from __future__ import annotations

from .errors import SessionExists, SessionGone, StoreError, VersionNotFound
from .migrations import migrate
from .records import (
    Failure,
    Run,
    RunArtifact,
    RunKind,
    RunLimit,
    RunStatus,
    Session,
    SessionFile,
    SessionKey,
    Version,
    VersionStatus,
)
from .store import Store

__all__ = [
    "Failure",
    "Run",
    "RunArtifact",
    "RunKind",
    "RunLimit",
    "RunStatus",
    "Session",
    "SessionExists",
    "SessionFile",
    "SessionGone",
    "SessionKey",
    "Store",
    "StoreError",
    "Version",
    "VersionNotFound",
    "VersionStatus",
    "migrate",
]
