"""How a failure becomes an HTTP answer: a status and ``{"error": "<one line>"}``.

The words are the ones chat users read (:func:`bot.present.words.explain` for the core's
refusals, :mod:`bot.present.api` for the API's own), so this module only picks the status.
The tree, and what each branch answers::

    ApiError (the API's own: bad body, bad token, …)   its own status
    UserError
    ├── SessionNotFound, NotOwner                      404 (the same words: a session of
    │                                                       someone else is not there for you)
    ├── NotAllowed                                     403
    ├── RateLimited                                    429, with Retry-After
    ├── StaleVersion, Busy, NothingToDo                409
    ├── RunsDisabled                                   503
    ├── TurnTimeout                                    504
    └── anything else (empty or long prompt, unknown
        language or model, bad version number)        400
    EngineError (the model could not be reached)       502
    anything else                                      500, logged with its traceback
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from aiohttp import web

from bot.errors import (
    Busy,
    NotAllowed,
    NothingToDo,
    NotOwner,
    RateLimited,
    RunsDisabled,
    SessionNotFound,
    StaleVersion,
    TurnTimeout,
    UserError,
)
from bot.present import words
from bot.present.api import Json
from engines import EngineError

__all__ = ["ApiError", "describe", "error_response", "json_error", "status_of"]

log = logging.getLogger("codethread.api")

_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (SessionNotFound, 404),
    (NotOwner, 404),
    (NotAllowed, 403),
    (RateLimited, 429),
    (StaleVersion, 409),
    (Busy, 409),
    (NothingToDo, 409),
    (RunsDisabled, 503),
    (TurnTimeout, 504),
    (UserError, 400),
    (EngineError, 502),
)


class ApiError(Exception):
    """A refusal of the API itself (not the core's): its status and its one-line message."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def status_of(error: BaseException) -> int:
    if isinstance(error, ApiError):
        return error.status
    return next((status for cls, status in _STATUSES if isinstance(error, cls)), 500)


def json_error(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Json | None = None,
) -> web.Response:
    return web.json_response({"error": message, **(extra or {})}, status=status, headers=headers)


def describe(
    error: BaseException, *, session_id: str | None = None
) -> tuple[int, str, dict[str, str]]:
    """The status, one-line message and headers for ``error``; ``session_id`` is the path's,
    so that a session of someone else reads exactly like a missing one. Logs what is ours
    to fix with its traceback, refusals as one line."""
    status = status_of(error)
    headers: dict[str, str] = {}
    if isinstance(error, ApiError):
        message = str(error)
        headers.update(error.headers)
    elif isinstance(error, NotOwner):
        message = words.explain(SessionNotFound(session_id or "?"))
    else:
        message = words.explain(error)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if isinstance(error, UserError | EngineError):
        log.info("API call refused or failed: %s", message)
    elif status >= 500:
        log.error("unexpected error in an API call", exc_info=error)
    return status, message, headers


def error_response(error: BaseException, *, session_id: str | None = None) -> web.Response:
    status, message, headers = describe(error, session_id=session_id)
    return json_error(status, message, headers=headers)
