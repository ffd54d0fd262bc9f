"""Errors raised by the store, the same from both backends.

Only conditions a caller can act on get their own class; anything else from the database (a
corrupt SQLite file, a full disk, a PostgreSQL connection lost mid-query) propagates as the
driver's exception it is (``sqlite3.Error``, ``asyncpg.PostgresError`` or ``OSError``)::

    StoreError
    ├── SessionExists        create_session() on a (platform, workspace, channel, thread) in use
    ├── SessionGone          add_version(), add_failure() or add_file() for a session id that
    │                        does not exist (never did, or was deleted meanwhile)
    ├── VersionNotFound      add_run() for a version id that does not exist (or was deleted)
    ├── ConstraintViolation  a value outside the schema's sets (a run's kind, status or limit,
    │                        a job's state) or two artifacts of one name in one run: nothing
    │                        was written (also a ValueError)
    └── StoreUnavailable     open_store() could not reach or log in to a PostgreSQL server

The migrations of both backends also raise a plain :class:`StoreError` for a database whose
schema is newer than this code.
"""

from __future__ import annotations

from .records import SessionKey

__all__ = [
    "ConstraintViolation",
    "SessionExists",
    "SessionGone",
    "StoreError",
    "StoreUnavailable",
    "VersionNotFound",
]


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


class ConstraintViolation(StoreError, ValueError):
    """The schema refused a value (a CHECK or UNIQUE constraint); nothing was written.

    One class for both backends, so that callers need not know ``sqlite3.IntegrityError`` from
    ``asyncpg.CheckViolationError``; the driver's error is the ``__cause__``.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"The store refused the value: {detail}")


class StoreUnavailable(StoreError):
    """The database server cannot be reached, or refuses us (a wrong password, no database).

    Raised only while opening: a caller that reports "cannot open the database" and stops needs
    to catch no driver's error for it.
    """
