"""Errors raised by the store.

Only conditions a caller can act on get their own class; anything else from SQLite (a corrupt
file, a full disk) propagates as the ``sqlite3`` exception it is::

    StoreError
    ├── SessionExists    create_session() on a (platform, workspace, channel, thread) in use
    ├── SessionGone      add_version(), add_failure() or add_file() for a session id that
    │                    does not exist (never did, or was deleted meanwhile)
    └── VersionNotFound  add_run() for a version id that does not exist (or was deleted)

:func:`storage.migrate` also raises a plain :class:`StoreError` for a database whose schema is
newer than this code.
"""

from __future__ import annotations

from .records import SessionKey

__all__ = ["SessionExists", "SessionGone", "StoreError", "VersionNotFound"]


class StoreError(Exception):
    """Base of the store's own errors."""


class SessionExists(StoreError):
    """A session already lives in this thread."""

    def __init__(self, key: SessionKey) -> None:
        self.key = key
        super().__init__(
            f"A session already exists for {key.platform} thread {key.thread!r} "
            f"(workspace {key.workspace!r}, channel {key.channel!r})."
        )


class SessionGone(StoreError, LookupError):
    """No session has this id (any more): a write for it found nothing to attach to.

    Not ``SessionNotFound``: that is the bot's user-facing error, a different thing.
    """

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        super().__init__(f"No session with id {session_id}.")


class VersionNotFound(StoreError, LookupError):
    """No version has this id."""

    def __init__(self, version_id: int) -> None:
        self.version_id = version_id
        super().__init__(f"No version with id {version_id}.")
