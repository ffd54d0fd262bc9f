"""The store of sessions and their versions, runs, files, failures, and of the rows replicas
share (deliveries, rate windows, jobs, API tokens, secrets): one protocol, two backends,
migrations for both.

Typical use::

    async with await open_store(target) as store:  # or Store.open(target): the same
        session = await store.create_session(key=key, owner=..., language=..., model=..., title=...)
        version = await store.add_version(session.id, request=..., code=..., ...)
        run = await store.add_run(version.id, kind="run", status="ok", ..., artifacts=[...])
        file = await store.add_file(session.id, "data.csv", b"a,b\\n1,2\\n")
        failure = await store.add_failure(session.id, request=..., message=...)
        retry = await store.take_failure(session.id)  # None: already retried
        job = await store.add_job(delivery=..., lane=..., kind="turn", payload={...})
        token = await store.token_by_hash(sha256_hex)  # None: unknown, revoked, expired
        key = await store.secret("web-links", lambda: os.urandom(32))  # one for every replica

``target`` is a SQLite file path (:class:`SqliteStore`, aiosqlite) or a ``postgresql://`` URL
(:class:`PostgresStore`, asyncpg; imported only when one is opened, so asyncpg stays unloaded
for SQLite users).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConstraintViolation,
    SessionExists,
    SessionGone,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
)
from .migrations import migrate
from .protocol import Store, is_postgres_url, open_store
from .records import (
    ApiToken,
    Failure,
    Job,
    JobState,
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
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "ApiToken",
    "ConstraintViolation",
    "Failure",
    "Job",
    "JobState",
    "PostgresStore",
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
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Version",
    "VersionNotFound",
    "VersionStatus",
    "is_postgres_url",
    "migrate",
    "open_store",
]


def __getattr__(name: str) -> Any:
    """``storage.PostgresStore``, imported (with asyncpg) on first use only."""
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
