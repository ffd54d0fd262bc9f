"""Durable turns: an accepted platform event is a row before the platform hears "ok".

An adapter that receives a message, a slash command or a button press calls
:meth:`Worker.accept` with the platform's delivery id and the event itself, and only then
acknowledges it. The row is the event's whole future:

- **once**: the delivery id is unique in the table, so a redelivery (Slack's retry after a
  timeout, a second replica receiving the same event, a restart between receipt and ack) adds
  nothing;
- **in order**: a worker claims only the oldest job of a lane (a session's thread), and not
  while another job of that lane runs, so turns of one thread run one after another across
  every replica sharing the database (PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``);
- **after a crash**: a running job's owner refreshes its heartbeat every few seconds; a job
  whose owner stopped (killed, restarted, its host gone) is claimed again once the heartbeat
  is :data:`STALE_AFTER` old. The adapter then finds the message the first attempt was
  writing (:attr:`Journal.previous`), says there that the answer was interrupted by a restart
  and is being written again, and performs the event again. A turn whose version was stored
  before the crash is not asked again (see :meth:`bot.core.SessionService.answered`).

Graceful shutdown stops claiming, lets running jobs finish (the adapters drain), and marks
nothing: a job cut short by the drain deadline is simply claimed again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import logs
from storage import Job, Store

__all__ = ["HEARTBEAT_EVERY", "STALE_AFTER", "Journal", "Perform", "Worker"]

log = logging.getLogger("codethread.jobs")

STALE_AFTER = 30.0  # seconds without a heartbeat before a running job is claimed again
HEARTBEAT_EVERY = 5.0
POLL_EVERY = 0.5  # when idle, how often another replica's new jobs are looked for
#: jobs one process performs at once. A turn mostly waits (for the model, the platform, its
#: place in its thread's line: a lane's later jobs are claimed, and wait, beside its first),
#: and the engine pool and the sandbox pool bound the work itself; a low cap here would make
#: the ninth thread wait for a free slot while the model sits idle (with 8, twenty threads of
#: replies took three times as long as the model needed: bench.discord_replies)
CONCURRENCY = 256


@dataclass(slots=True)
class Journal:
    """What one attempt at a job records as it goes, so that the next attempt can pick up.

    ``previous`` is the message the last attempt was writing (a platform handle, as the
    adapter recorded it), when there was an attempt before this one.
    """

    job: Job
    store: Store
    _notes: dict[str, Any] | None = None

    @property
    def resumed(self) -> bool:
        return self.job.attempts > 1

    @property
    def previous(self) -> Any:
        return self.earlier("message")

    def earlier(self, name: str) -> Any:
        """What the last attempt noted as ``name`` (None: nothing, or no attempt before)."""
        return (self.job.progress or {}).get(name)

    async def message(self, handle: Any) -> None:
        """The platform message this attempt is writing (JSON-able: a ts, an id)."""
        await self.note("message", handle)

    async def note(self, name: str, value: Any) -> None:
        """Record ``value`` (JSON-able) for the next attempt, beside what is noted already."""
        if self._notes is None:
            self._notes = dict(self.job.progress or {})
        self._notes[name] = value
        await self.store.job_progress(self.job.id, self._notes)


Perform = Callable[[Job, Journal], Awaitable[None]]


class Worker:
    """Claims jobs from the store and performs them, at most ``concurrency`` at once.

    ``perform`` is the adapter's own handler of the event kind (the job's ``kind`` says whose:
    ``slack.thread``, ``discord.thread``, ``run.sandbox``…); it must show its own errors (the
    presenter does), and anything it raises marks the job failed, logged, never retried.
    A worker claims only the kinds it has a handler for, so a replica that serves only Slack
    leaves Discord's jobs to a replica that has Discord, and ``serve`` leaves runs to
    ``codethread worker`` (:mod:`bot.remote_runs`).
    """

    def __init__(
        self,
        store: Store,
        *,
        concurrency: int = CONCURRENCY,
        owner: str | None = None,
        stale_after: float = STALE_AFTER,
        heartbeat_every: float = HEARTBEAT_EVERY,
        poll_every: float = POLL_EVERY,
    ) -> None:
        """``poll_every``: how often, when idle, the database is asked for jobs that other
        processes wrote down (a job this process accepts wakes it at once)."""
        self.store = store
        self.concurrency = concurrency
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stale_after = stale_after
        self.poll_every = poll_every
        # a running job must never look stale to another replica: beat well within it
        self.heartbeat_every = min(heartbeat_every, stale_after / 3)
        self._performers: dict[str, Perform] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._drained = asyncio.Event()  # the last claim found nothing to do
        #: jobs waiting in the whole database (every replica's), as of the last heartbeat
        self.queued = 0

    def handle(self, prefix: str, perform: Perform) -> None:
        """Jobs whose kind starts with ``prefix`` (``slack.``) go to ``perform``."""
        self._performers[prefix] = perform

    async def accept(
        self, *, delivery: str, lane: str, kind: str, payload: Mapping[str, Any]
    ) -> bool:
        """Write the event down (before the platform is acknowledged); False for a delivery
        that was accepted before, here or by another replica."""
        job = await self.store.add_job(delivery=delivery, lane=lane, kind=kind, payload=payload)
        if job is None:
            return False
        self._drained.clear()
        self._wake.set()
        return True

    async def idle(self) -> None:
        """Until nothing is running and the last look found no job (tests, and draining)."""
        await self._drained.wait()

    @property
    def busy(self) -> int:
        return len(self._running)

    def start(self) -> None:
        if not self._loops:
            self._loops = [
                asyncio.create_task(self._claim_loop(), name="codethread-jobs-claim"),
                asyncio.create_task(self._heartbeat_loop(), name="codethread-jobs-heartbeat"),
            ]

    async def stop(self, *, drain: float = 5.0) -> None:
        """Stop claiming; give running jobs ``drain`` seconds, then cancel them (they are
        claimed again by the next worker, their heartbeat gone stale)."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=drain)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._drained.set()  # nothing more runs here

    async def _claim_loop(self) -> None:
        while not self._stopping:
            if len(self._running) >= self.concurrency:
                await self._wait(self.poll_every)
                continue
            try:
                job = await self.store.claim_job(
                    self.owner, stale_after=self.stale_after, kinds=tuple(self._performers)
                )
            except Exception as err:  # the database is away: try again soon
                log.warning("could not claim a job: %s", err)
                await self._wait(self.poll_every)
                continue
            if job is None:
                if not self._running:
                    self._drained.set()
                await self._wait(self.poll_every)
                continue
            self._drained.clear()
            task = asyncio.create_task(self._perform(job), name=f"codethread-job-{job.id}")
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()  # a lane may be free now

    async def _wait(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _perform(self, job: Job) -> None:
        logs.job_id.set(job.id)
        perform = next(
            (p for prefix, p in self._performers.items() if job.kind.startswith(prefix)), None
        )
        if perform is None:
            log.error("no handler for job kind %r", job.kind)
            await self.store.finish_job(job.id, state="failed")
            return
        if job.attempts > 1:
            log.info("resuming job %d (attempt %d)", job.id, job.attempts)
        try:
            await perform(job, Journal(job=job, store=self.store))
        except asyncio.CancelledError:
            raise  # shutdown: left running, so the next start claims it again
        except Exception:
            log.exception("job %d failed", job.id)
            await self.store.finish_job(job.id, state="failed", owner=self.owner)
            return
        if not await self.store.finish_job(job.id, state="done", owner=self.owner):
            log.warning("job %d was taken over by another process before it finished", job.id)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                if self._running:
                    await self.store.heartbeat(self.owner)
                self.queued = await self.store.count_jobs("queued")
            except Exception as err:
                log.warning("could not refresh the jobs' heartbeat: %s", err)
