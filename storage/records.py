"""Values the store hands out: plain frozen dataclasses, no connection attached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ApiToken",
    "Failure",
    "Job",
    "JobState",
    "Run",
    "RunArtifact",
    "RunKind",
    "RunLimit",
    "RunStatus",
    "Session",
    "SessionFile",
    "SessionKey",
    "Version",
    "VersionStatus",
]

# Only "ok" is ever written: a failed turn makes no version, its request is kept as a Failure.
# m001's CHECK on versions.status still admits 'failed' too; released migrations never change,
# and narrowing a CHECK in SQLite means rebuilding the table, not worth it for a dead value.
VersionStatus = Literal["ok"]
RunKind = Literal["run", "test"]  # the snippet itself, or its unit tests
# The sandbox's values (storage does not import the sandbox; the schema checks them).
RunStatus = Literal["ok", "failed", "compile_error", "limit", "unavailable"]
RunLimit = Literal["wall_time", "cpu_time", "memory", "file_size", "processes", "output"]
# queued → running (claimed by a replica) → done | failed; a running job whose owner stops
# heartbeating is claimed again (see Store.claim_job).
JobState = Literal["queued", "running", "done", "failed"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One sandboxed run of a version, as stored (output already capped by the sandbox)."""

    id: int
    version_id: int
    kind: RunKind
    status: RunStatus
    exit_code: int | None  # None when a signal or a limit ended it, or it never started
    stdout: str
    stderr: str
    duration_ms: int
    peak_memory_kb: int | None
    limit_hit: RunLimit | None
    compile_output: str
    tests: str  # the unit tests a 'test' run ran ("" for a plain run)
    created_at: float
    stdin: str = ""  # what the run read on standard input
    args: tuple[str, ...] = ()  # its command-line arguments
    # The names of the files it produced, sorted; their bytes only from list_artifacts(), so
    # that showing a result does not load every file it wrote.
    artifacts: tuple[str, ...] = ()
    # Its version's number within the session (read along with the run, by its primary key),
    # so that a list of runs can say "version 3" without a query per run. None only for a
    # Run built by hand.
    version_number: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunArtifact:
    """A file a run produced (a plot, a CSV), kept whole with the run."""

    id: int
    run_id: int
    name: str  # unique within its run
    size: int  # len(data), in bytes
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFile:
    """A file the user attached to a session, for its snippets' runs to read."""

    id: int
    session_id: int
    name: str  # unique within its session: attaching the same name again replaces it
    size: int  # len(data), in bytes
    data: bytes
    created_at: float  # when it was attached (or last replaced)


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """The request of a turn whose answer failed, kept so that Retry works after a restart."""

    id: int
    session_id: int
    request: str  # the prompt or feedback to send again
    message: str  # what the user was told went wrong
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """An accepted turn, kept until it is done so that any replica, or this one after a
    restart, can run it; jobs of one lane (a session's thread) run one at a time, in order."""

    id: int
    delivery: str  # the platform's id for the event: unique, so a redelivery adds nothing
    lane: str  # what orders jobs, e.g. the session's thread key "slack:T1:C1:1700.1"
    kind: str  # what the bot is to do (its own names: "turn", "command", …)
    payload: dict[str, Any]  # the JSON object the bot wrote when it accepted the event
    state: JobState
    owner: str | None  # the replica running it (None while queued)
    attempts: int  # how many times it was claimed: 1 on the first claim, +1 on each reclaim
    progress: dict[str, Any] | None  # what the bot recorded while running (None: nothing yet)
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A bearer token of the HTTP API, as stored: who it speaks for and its life so far.

    Never the token nor its hash: the store keeps only the hash (see :mod:`bot.tokens`), and a
    record that leaves the store (a listing, a log line) carries neither.
    """

    id: int
    user: str  # whom the API takes its bearer for (the owner of the sessions it makes)
    label: str  # what it is for, in its creator's words ("" for none)
    created_at: float  # unix seconds
    expires_at: float | None  # None: never expires
    revoked_at: float | None  # None: not revoked
    last_used_at: float | None  # recorded at most once a minute; None: never used
