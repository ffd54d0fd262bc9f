"""Runs on other machines: ``codethread worker`` performs the sandbox runs ``serve`` writes down.

Chat and runs scale apart. With ``run_workers = true`` (TOML) and a shared PostgreSQL, the
processes that talk to Slack and Discord do not run snippets themselves: their
:class:`JobPool` writes each run (the code, its input, its files) as a job of kind
:data:`RUN_KIND`, and waits for its result. Any number of ``codethread worker`` processes, on
machines with bubblewrap and the same config, claim those jobs (``FOR UPDATE SKIP LOCKED``),
run them in their own :class:`~sandbox.SandboxPool` and note the result on the job, artifacts
included; storing the run, the card and its buttons stay with the caller, as for a local run.

Why a job and not an RPC: the database is already the one thing every replica shares, a
worker needs no address, a worker that dies mid-run leaves a stale job that another claims,
and the run waits for capacity in the database's line instead of in one process's memory.

A run no worker claims within :data:`CLAIM_TIMEOUT` seconds comes back ``unavailable`` with
the reason (no worker running), and is withdrawn.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bot.jobs import Journal
from sandbox import Limits, RunResult, Sandbox, SandboxPool
from sandbox.artifacts import Artifact
from storage import Job, Store

__all__ = ["CLAIM_TIMEOUT", "POLL_EVERY", "RUN_KIND", "JobPool", "perform_run"]

RUN_KIND = "run.sandbox"
CLAIM_TIMEOUT = 60.0  # seconds a run waits for a worker before it is given up
POLL_EVERY = 0.05  # at most, how long a run waits unseen: by its caller, by an idle worker


class JobPool(SandboxPool):
    """A :class:`SandboxPool` whose runs are performed by ``codethread worker`` processes.

    ``sandbox`` is this process's view of the sandbox (its languages, its prepared
    packages, named in the system prompt): the workers share the config, so the same.
    """

    def __init__(
        self, sandbox: Sandbox, store: Store, *, claim_timeout: float = CLAIM_TIMEOUT
    ) -> None:
        super().__init__(sandbox, size=1)
        self.store = store
        self.claim_timeout = claim_timeout

    async def check(self) -> str | None:
        return None  # each worker checks its own sandbox before it claims anything

    def available(self) -> bool:
        return True

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        args: Sequence[str] = (),
        files: Mapping[str, bytes | str] | None = None,
        limits: Limits | None = None,
        on_queued: Any = None,
    ) -> RunResult:
        return await self._remote(
            {"op": "run", "language": language, "code": code, "stdin": stdin,
             "args": list(args), "files": _files(files), "limits": _limits(limits)}
        )  # fmt: skip

    async def run_tests(
        self,
        language: str,
        code: str,
        tests: str,
        *,
        limits: Limits | None = None,
        on_queued: Any = None,
    ) -> RunResult:
        return await self._remote(
            {"op": "tests", "language": language, "code": code, "tests": tests,
             "limits": _limits(limits)}
        )  # fmt: skip

    async def _remote(self, request: dict[str, Any]) -> RunResult:
        name = f"run:{uuid.uuid4().hex}"
        job = await self.store.add_job(delivery=name, lane=name, kind=RUN_KIND, payload=request)
        assert job is not None  # a fresh delivery id
        deadline = time.monotonic() + self.claim_timeout
        wait = 0.005  # a short run is back within milliseconds: look soon, then less often
        while True:
            await asyncio.sleep(wait)
            wait = min(wait * 2, POLL_EVERY)
            now = await self.store.get_job(job.id)
            if now is None or now.state == "failed":
                return _unavailable("The run worker failed on this run; see its log.")
            if now.state == "done":
                return _result((now.progress or {})["result"])
            if now.state == "queued" and time.monotonic() > deadline:
                await self.store.finish_job(job.id, state="failed")
                return _unavailable(
                    f"No run worker took this run within {self.claim_timeout:.0f} s: is "
                    "`codethread worker` running?"
                )


async def perform_run(pool: SandboxPool, job: Job, journal: Journal) -> None:
    """A worker's side: run what :class:`JobPool` wrote down, and note the result on it."""
    request = job.payload
    limits = Limits(**request["limits"]) if request.get("limits") else None
    if request["op"] == "tests":
        result = await pool.run_tests(
            request["language"], request["code"], request["tests"], limits=limits
        )
    else:
        files = {name: base64.b64decode(data) for name, data in request["files"].items()}
        result = await pool.run(
            request["language"], request["code"], stdin=request["stdin"],
            args=request["args"], files=files, limits=limits,
        )  # fmt: skip
    await journal.note("result", _encoded(result))


def _files(files: Mapping[str, bytes | str] | None) -> dict[str, str]:
    return {
        name: base64.b64encode(data.encode() if isinstance(data, str) else data).decode()
        for name, data in (files or {}).items()
    }


def _limits(limits: Limits | None) -> dict[str, Any] | None:
    return dataclasses.asdict(limits) if limits is not None else None


def _encoded(result: RunResult) -> dict[str, Any]:
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    fields["artifacts"] = [
        {"name": a.name, "data": base64.b64encode(a.data).decode()} for a in result.artifacts
    ]
    return fields


def _result(fields: dict[str, Any]) -> RunResult:
    artifacts = tuple(
        Artifact(name=a["name"], data=base64.b64decode(a["data"])) for a in fields["artifacts"]
    )
    return RunResult(**{**fields, "artifacts": artifacts})


def _unavailable(message: str) -> RunResult:
    return RunResult(
        status="unavailable", exit_code=None, stdout="", stderr="", duration_ms=0,
        message=message,
    )  # fmt: skip
