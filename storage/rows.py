"""From database rows to records, and the small rules both backends share.

``sqlite3.Row`` and ``asyncpg.Record`` both read a column by name, and JSON columns arrive as
text from both (SQLite keeps TEXT; asyncpg decodes ``json``/``jsonb`` to ``str`` unless told
otherwise), so one set of converters turns either backend's rows into the same records, and a
test comparing a record from one backend with the other compares like with like.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

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

__all__ = [
    "FINISHED_JOB_TTL",
    "FINISHED_STATES",
    "PRUNE_EVERY",
    "TOKEN_TOUCH_EVERY",
    "Clock",
    "Row",
    "artifact",
    "check_window",
    "dump_object",
    "failure",
    "file",
    "job",
    "like_pattern",
    "run",
    "session",
    "token",
    "version",
]

Clock = Callable[[], float]  # unix seconds: what created_at, expiries and heartbeats are in

# Expired deliveries and rate hits, and finished jobs, are removed by the store itself, lazily:
# every PRUNE_EVERY-th call that adds such rows also deletes the stale ones (a few rows each
# time, through an index), so no caller has to schedule a cleanup and a restart loses nothing.
PRUNE_EVERY = 100
FINISHED_JOB_TTL = 86400.0  # a finished job is kept a day (for the gauge, for a look after)
FINISHED_STATES: tuple[JobState, ...] = ("done", "failed")
# A token's last_used_at is written at most this often (seconds): a client making a request a
# second costs one write a minute, not one a request.
TOKEN_TOUCH_EVERY = 60.0


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards in ``text`` taken literally (``ESCAPE '\\'``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def check_window(window: float, limit: int) -> None:
    """``ValueError`` for a rate window that could never admit a hit."""
    if window <= 0 or limit < 1:
        raise ValueError(f"a rate window needs window > 0 and limit >= 1, not {window}, {limit}")


def dump_object(value: Mapping[str, Any], what: str) -> str:
    """``value`` as JSON text; a ``TypeError`` now (not a half-written row) for anything that
    is not a JSON object of JSON values."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (a JSON object), not {type(value).__name__}")
    return json.dumps(dict(value), ensure_ascii=False, allow_nan=False)


def session(row: Row) -> Session:
    return Session(
        id=row["id"],
        key=SessionKey(
            platform=row["platform"],
            workspace=row["workspace"],
            channel=row["channel"],
            thread=row["thread"],
        ),
        owner=row["owner"],
        language=row["language"],
        model=row["model"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version_count=row["version_count"],
    )


def version(row: Row) -> Version:
    return Version(
        id=row["id"],
        session_id=row["session_id"],
        number=row["number"],
        request=row["request"],
        code=row["code"],
        note=row["note"],
        model=row["model"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        latency_ms=row["latency_ms"],
        status=cast(VersionStatus, row["status"]),  # only 'ok' is ever written
        created_at=row["created_at"],
    )


def run(row: Row) -> Run:
    """A run; ``args`` and ``artifacts`` are JSON lists of strings (text)."""
    return Run(
        id=row["id"],
        version_id=row["version_id"],
        kind=cast(RunKind, row["kind"]),  # CHECK constraints keep these to their values
        status=cast(RunStatus, row["status"]),
        exit_code=row["exit_code"],
        stdout=row["stdout"],
        stderr=row["stderr"],
        duration_ms=row["duration_ms"],
        peak_memory_kb=row["peak_memory_kb"],
        limit_hit=cast(RunLimit | None, row["limit_hit"]),
        compile_output=row["compile_output"],
        tests=row["tests"],
        created_at=row["created_at"],
        stdin=row["stdin"],
        args=tuple(json.loads(row["args"])),
        # Sorted here, by code point, as list_artifacts() orders them (PostgreSQL's collation
        # would order them otherwise).
        artifacts=tuple(sorted(json.loads(row["artifacts"]))),
        version_number=row["version_number"],
    )


def file(row: Row) -> SessionFile:
    return SessionFile(
        id=row["id"],
        session_id=row["session_id"],
        name=row["name"],
        size=row["size"],
        data=bytes(row["data"]),
        created_at=row["created_at"],
    )


def artifact(row: Row) -> RunArtifact:
    return RunArtifact(
        id=row["id"],
        run_id=row["run_id"],
        name=row["name"],
        size=row["size"],
        data=bytes(row["data"]),
    )


def failure(row: Row) -> Failure:
    return Failure(
        id=row["id"],
        session_id=row["session_id"],
        request=row["request"],
        message=row["message"],
        created_at=row["created_at"],
    )


def job(row: Row) -> Job:
    progress = row["progress"]
    return Job(
        id=row["id"],
        delivery=row["delivery"],
        lane=row["lane"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        state=cast(JobState, row["state"]),  # a CHECK keeps it to its values
        owner=row["owner"],
        attempts=row["attempts"],
        progress=None if progress is None else json.loads(progress),
        created_at=row["created_at"],
    )


def token(row: Row) -> ApiToken:
    """A token's record from a row of ``api_tokens`` (its ``hash`` is not read)."""
    return ApiToken(
        id=row["id"],
        user=row["owner"],
        label=row["label"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )
