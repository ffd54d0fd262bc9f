"""The store protocol, and :func:`open_store`, which picks the backend from its target.

:class:`Store` is what the bot holds: every method either backend offers, with the contract
both keep (the same records, the same errors from :mod:`storage.errors`). Two classes
implement it: :class:`storage.sqlite.SqliteStore` (a file, embedded, the default) and
:class:`storage.postgres.PostgresStore` (a server shared by several replicas). Neither inherits
from it; mypy checks each against it where :func:`open_store` returns one as a ``Store``.

``Store.open(target)`` is :func:`open_store`, so code written when ``Store`` was the SQLite class
keeps working, and the backends are imported only when one is opened (asyncpg is never loaded
by a bot that uses SQLite).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

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
from .rows import Clock

__all__ = ["Store", "is_postgres_url", "open_store"]

# "postgresql://…", or the same once it went through pathlib (CODETHREAD_DB read into a Path,
# or str() of one), which folds "//" to "/". No SQLite file is named like this by accident.
_POSTGRES_URL = re.compile(r"(postgres(?:ql)?:)/(/?)", re.IGNORECASE)


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a SQLite file."""
    return _POSTGRES_URL.match(str(target)) is not None


def _postgres_url(target: str | Path) -> str:
    """The URL ``target`` holds, with a ``//`` that pathlib folded put back."""
    text = str(target)
    found = _POSTGRES_URL.match(text)
    if found is None or found.group(2):
        return text
    return f"{found.group(1)}//{text[found.end() :]}"


async def open_store(target: str | Path, *, clock: Clock = time.time) -> Store:
    """Open (creating and migrating as needed) the store ``target`` names.

    A ``postgresql://`` or ``postgres://`` URL opens PostgreSQL (as asyncpg reads it, e.g.
    ``postgresql://user:secret@db.internal/codethread`` or ``postgresql:///codethread?host=/run``
    for a Unix socket); anything else is a SQLite file path (``":memory:"`` for a private
    in-memory database): the values ``CODETHREAD_DB`` takes. A URL that was read into a
    :class:`~pathlib.Path` (which folds its ``//`` to ``/``) is still recognised as one. ``clock``
    supplies the unix-seconds timestamps the store writes.
    """
    if is_postgres_url(target):
        from .postgres import PostgresStore

        return await PostgresStore.open(_postgres_url(target), clock=clock)
    from .sqlite import SqliteStore

    return await SqliteStore.open(target, clock=clock)


class Store(Protocol):
    """Sessions keyed by their thread, their numbered versions, runs, failures, attached files
    and the files runs produced; and the rows several replicas share (deliveries, rate
    windows, jobs).

    ``async with await Store.open(target) as store:`` closes it on exit. Every value is a bound
    parameter; every write is atomic (one statement or one transaction), also between
    processes sharing the database.
    """

    @classmethod
    async def open(cls, target: str | Path, /, *, clock: Clock = time.time) -> Store:
        """:func:`open_store`: a PostgreSQL URL or a SQLite path. (Each backend's own ``open``
        opens only its own kind.)"""
        return await open_store(target, clock=clock)

    async def close(self) -> None:
        """Finish queued work and close every connection. Safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(
        self, *, key: SessionKey, owner: str, language: str, model: str, title: str
    ) -> Session:
        """Start a session in ``key``'s thread; :class:`SessionExists` if one is there already."""
        ...

    async def get_session(self, session_id: int) -> Session | None: ...

    async def find_session(self, key: SessionKey) -> Session | None:
        """The session living in ``key``'s thread, if any."""
        ...

    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        platform: str | None = None,
        workspace: str | None = None,
        limit: int = 50,
        search: str | None = None,
        with_versions: bool = False,
    ) -> list[Session]:
        """Sessions matching every filter given, most recently updated first (ties: newest id).

        ``search`` keeps sessions whose title or any version's request, note or code contains
        the text (case-insensitive; ``%`` and ``_`` match themselves; "" filters nothing);
        ``with_versions`` leaves out sessions without a version yet. ``ValueError`` for a
        negative ``limit``.
        """
        ...

    async def prune_empty(self, older_than: float) -> int:
        """Delete the sessions without a version nobody touched for ``older_than`` seconds;
        returns how many."""
        ...

    async def delete_session(self, session_id: int) -> bool:
        """Delete a session and everything it holds; False if there was none."""
        ...

    # -- versions ---------------------------------------------------------------------------

    async def add_version(
        self,
        session_id: int,
        *,
        request: str,
        code: str,
        note: str,
        model: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency_ms: int,
        status: VersionStatus = "ok",
    ) -> Version:
        """Append the session's next version (latest number + 1, distinct and consecutive
        under concurrent calls from any process), bump its ``updated_at`` and clear its
        failures. :class:`SessionGone` if there is no such session."""
        ...

    async def get_version(self, session_id: int, number: int | None = None) -> Version | None:
        """Version ``number`` of a session, or its latest when ``number`` is None."""
        ...

    async def list_versions(self, session_id: int) -> list[Version]:
        """All versions of a session, oldest (number 1) first."""
        ...

    # -- runs -------------------------------------------------------------------------------

    async def add_run(
        self,
        version_id: int,
        *,
        kind: RunKind,
        status: RunStatus,
        exit_code: int | None,
        stdout: str,
        stderr: str,
        duration_ms: int,
        peak_memory_kb: int | None,
        limit_hit: RunLimit | None,
        compile_output: str,
        tests: str = "",
        stdin: str = "",
        args: Sequence[str] = (),
        artifacts: Sequence[tuple[str, bytes]] = (),
    ) -> Run:
        """Record a run and the files it produced, as one transaction.
        :class:`VersionNotFound` for no such version; :class:`ConstraintViolation` (nothing
        written) for a value outside the schema's sets or two artifacts of one name."""
        ...

    async def latest_run(self, version_id: int) -> Run | None:
        """The version's most recent run, if any (its artifacts' names, not their bytes)."""
        ...

    async def list_runs(self, session_id: int, *, limit: int = 50) -> list[Run]:
        """The session's runs, of all its versions, newest first (as :meth:`latest_run`
        returns them, ``version_number`` set). ``ValueError`` for a negative ``limit``."""
        ...

    async def get_run(self, run_id: int) -> Run | None:
        """Run ``run_id`` (as :meth:`latest_run` returns it), if there is one."""
        ...

    async def list_artifacts(self, run_id: int) -> list[RunArtifact]:
        """The files a run produced, by name (code point order)."""
        ...

    async def get_artifact(self, run_id: int, name: str) -> RunArtifact | None:
        """The file ``name`` run ``run_id`` produced (its bytes too), if it produced one."""
        ...

    # -- files ------------------------------------------------------------------------------

    async def add_file(self, session_id: int, name: str, data: bytes) -> SessionFile:
        """Attach (or replace, keeping its id) the session's file ``name``; bumps the
        session's ``updated_at``. :class:`SessionGone` if there is no such session."""
        ...

    async def list_files(self, session_id: int) -> list[SessionFile]:
        """The session's files in the order they were attached (a replaced one as of then)."""
        ...

    async def delete_file(self, session_id: int, name: str) -> bool:
        """Remove the session's file ``name``; False if it has none of that name."""
        ...

    # -- failures ---------------------------------------------------------------------------

    async def add_failure(self, session_id: int, *, request: str, message: str) -> Failure:
        """Keep the request of a failed turn (superseding the session's earlier one) for a
        later retry. :class:`SessionGone` if there is no such session."""
        ...

    async def take_failure(self, session_id: int, failure_id: int | None = None) -> Failure | None:
        """Remove and return failure ``failure_id`` of the session (its latest when None);
        of concurrent takers exactly one gets it."""
        ...

    async def latest_failure(self, session_id: int) -> Failure | None:
        """The session's most recent failure still waiting for a retry, if any."""
        ...

    async def clear_failures(self, session_id: int) -> None:
        """Forget every failure of the session."""
        ...

    # -- deliveries and rate windows ----------------------------------------------------------

    async def claim_delivery(self, key: str, *, ttl: float = 86400) -> bool:
        """True the first time ``key`` (a platform's delivery id) is claimed, from any process;
        False for every later claim until ``ttl`` seconds after the first, when the key may be
        claimed afresh. Expired keys are removed lazily."""
        ...

    async def rate_hit(
        self, key: str, *, window: float, limit: int, count: bool = True
    ) -> float | None:
        """One hit against ``key``'s sliding window, atomically across processes.

        When ``limit`` hits already fall within the last ``window`` seconds: refused, nothing
        counted, and the seconds until the oldest of them leaves the window are returned.
        Otherwise the hit is counted (unless ``count`` is False: a peek) and None returned.
        """
        ...

    # -- jobs -------------------------------------------------------------------------------

    async def add_job(
        self, *, delivery: str, lane: str, kind: str, payload: Mapping[str, Any]
    ) -> Job | None:
        """Queue a job; None when a job of that ``delivery`` exists already (a redelivery, on
        any replica). ``TypeError`` for a payload that is not a JSON object."""
        ...

    async def claim_job(
        self, owner: str, *, stale_after: float, kinds: Sequence[str] | None = None
    ) -> Job | None:
        """Claim the oldest job that may run now, for ``owner``; None when there is none.

        A lane's jobs run one at a time in id order: only a lane's first unfinished job is
        claimable, when it is queued and no job of its lane runs with a fresh heartbeat, or
        when it is running but its heartbeat is older than ``stale_after`` seconds (its owner
        died: it is claimed again). A claim sets it running for ``owner`` with a fresh
        heartbeat and counts an attempt. Two claimers, in any processes, never get one job.

        With ``kinds``, only a job whose kind starts with one of those prefixes (exactly,
        case and all) is claimed (``("run.",)``: a worker that only runs snippets); the
        lane rule still counts every job, so a job waits behind its lane's earlier ones of
        any kind. An empty ``kinds`` claims nothing.
        """
        ...

    async def heartbeat(self, owner: str) -> None:
        """Refresh the heartbeat of every job ``owner`` is running."""
        ...

    async def job_progress(self, job_id: int, progress: Mapping[str, Any]) -> None:
        """Record what a running job has done so far (a JSON object, replacing the last)."""
        ...

    async def finish_job(
        self, job_id: int, *, state: Literal["done", "failed"] = "done", owner: str | None = None
    ) -> bool:
        """Mark a job finished; finished jobs are deleted a day later (lazily). With
        ``owner``, only while the job is still that owner's: a process that was thought dead
        and whose job another took over finishes nothing (False)."""
        ...

    async def count_jobs(self, state: JobState) -> int:
        """How many jobs are in ``state`` (for a gauge)."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """One job as it stands now (None once pruned), e.g. to wait for its result."""
        ...

    async def prune_jobs(self, older_than: float = 86400) -> int:
        """Delete the jobs finished more than ``older_than`` seconds ago; returns how many."""
        ...

    # -- API tokens and shared secrets ---------------------------------------------------------

    async def add_token(
        self, user: str, token_hash: str, *, label: str = "", expires_at: float | None = None
    ) -> ApiToken:
        """Keep a new token of ``user`` by its hash (the SHA-256 hex of its text, see
        :mod:`bot.tokens`); ``expires_at`` in unix seconds, None for never.
        :class:`ConstraintViolation` for a hash that is not 64 characters or is known
        already."""
        ...

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The live token of that hash: None when unknown, revoked or expired (by the
        store's clock). Records its use in ``last_used_at``, at most once a minute per token
        (the record returned shows the time recorded)."""
        ...

    async def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every token (only ``user``'s, when given), newest first; revoked and expired ones
        too, with their ``revoked_at`` and ``expires_at``."""
        ...

    async def revoke_token(self, token_id: int) -> bool:
        """Revoke token ``token_id`` from now on (one revoked already keeps its time); False
        when there is no such token."""
        ...

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The shared secret ``name``; the first caller, in any process, stores ``make()``
        and every caller gets that same value (insert if absent, then read), so that every
        replica signs and checks with one key. ``make`` may be called and its value thrown
        away when another process stored one first."""
        ...
