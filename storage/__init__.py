"""aiosqlite store for sessions and their versions: schema, migrations, queries.

Typical use::

    async with await Store.open(path) as store:
        session = await store.create_session(key=key, owner=..., language=..., model=..., title=...)
        version = await store.add_version(session.id, request=..., code=..., ...)
"""

from __future__ import annotations

from .errors import SessionExists, SessionNotFound, StoreError
from .migrations import migrate
from .records import Session, SessionKey, Version, VersionStatus
from .store import Store

__all__ = [
    "Session",
    "SessionExists",
    "SessionKey",
    "SessionNotFound",
    "Store",
    "StoreError",
    "Version",
    "VersionStatus",
    "migrate",
]
