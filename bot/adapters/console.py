"""The terminal adapter behind ``codethread chat``.

The first line starts a session, each later line is feedback that makes the next version, and
lines starting with ``/`` are commands. On a terminal the answer streams live with syntax
highlighting (rich); with piped input the output is plain text, each version one fenced block,
so that it can be read by scripts. Errors are one-line messages; the session stays usable.
"""

from __future__ import annotations

import contextlib
import getpass
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.syntax import Syntax

from bot.adapters.render import loading_text, render_run
from bot.codeblocks import close_open_fence, fence
from bot.core import SessionService
from bot.errors import UserError
from bot.runs import RunService
from bot.values import (
    Caller,
    Done,
    Failed,
    Loading,
    NonCode,
    Progress,
    Reply,
    RunReport,
    Started,
    Waiting,
)
from storage import Session, SessionKey, Version

__all__ = ["ConsoleChat", "console_caller"]

HELP = (
    "Commands: /new (start another snippet), /snippets (list yours), /show [N] (a version), "
    "/run [N] (run it in the sandbox), /test (model-written unit tests), /fix (next version "
    "from the last failure), /repair (test and fix until it passes), /retry (repeat a failed "
    "request), /delete (this session), /quit"
)


def console_caller() -> Caller:
    return Caller(platform="console", workspace="local", user=getpass.getuser(), channel="terminal")


def describe(session: Session, version: Version) -> str:
    seconds = version.latency_ms / 1000
    return (
        f"session {session.id} · version {version.number} · {session.language} · "
        f"{version.model} · {seconds:.1f} s"
    )


class ConsoleChat:
    """One terminal conversation; ``run`` consumes input lines until they end or /quit."""

    def __init__(
        self,
        service: SessionService,
        *,
        runs: RunService,
        out: TextIO,
        interactive: bool,
        language: str | None = None,
        model: str | None = None,
        session: Session | None = None,
        caller: Caller | None = None,
    ) -> None:
        self.service = service
        self.runs = runs
        self.caller = caller or console_caller()
        self.language = language
        self.model = model
        self.session = session
        self.interactive = interactive
        self.console = Console(
            file=out,
            highlight=False,
            soft_wrap=True,
            force_terminal=interactive or None,
            no_color=not interactive,
        )

    def say(self, text: str, style: str = "") -> None:
        if self.interactive:
            self.console.print(text, style=style or None, markup=False)
        else:
            self.console.out(text, highlight=False)

    async def run(self, lines: AsyncIterator[str]) -> None:
        if self.session is not None:
            self.say(f"Resuming session {self.session.id}: {self.session.title}", "dim")
        async for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not await self.command(line):
                        return
                else:
                    await self.message(line)
            except UserError as err:
                self.say(f"! {err}", "bold red")

    async def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        actions: dict[str, Callable[[str], Awaitable[None]]] = {
            "/new": self._new,
            "/snippets": self._snippets,
            "/show": self._show,
            "/retry": self._retry,
            "/delete": self._delete,
            "/run": self._run,
            "/test": self._test,
            "/fix": self._fix,
            "/repair": self._repair,
            "/help": self._help,
        }
        if name in ("/quit", "/exit"):
            return False
        action = actions.get(name)
        if action is None:
            self.say(f"! Unknown command {name}. {HELP}", "bold red")
            return True
        await action(arg)
        return True

    async def message(self, text: str) -> None:
        if self.session is None:
            self.session = await self.service.start(
                caller=self.caller,
                key=SessionKey(
                    platform=self.caller.platform,
                    workspace=self.caller.workspace,
                    channel=self.caller.channel,
                    thread=uuid.uuid4().hex,
                ),
                prompt=text,
                language=self.language,
                model=self.model,
            )
        await self.render(self.service.turn(self.session.id, self.caller, text))

    async def render(self, replies: AsyncGenerator[Reply | RunReport]) -> None:
        live: Live | None = None
        try:
            async with contextlib.aclosing(replies) as events:
                async for event in events:
                    match event:
                        case Waiting(position=position):
                            self.say(f"… waiting for {position} earlier request(s)", "dim")
                        case Loading():
                            self.say(f"… {loading_text(event)}", "dim")
                        case Started() if self.interactive:
                            live = Live(console=self.console, refresh_per_second=8, transient=True)
                            live.start()
                        case Progress(text=text) if live is not None:
                            live.update(Markdown(close_open_fence(text)))
                        case Done(session=session, version=version, complete=complete):
                            if live is not None:
                                live.stop()
                                live = None
                            self.session = session
                            self.show_version(session, version)
                            if not complete:
                                self.say("! The answer was cut off; ask me to finish it.", "yellow")
                        case NonCode(text=text):
                            self.say("(no code in this answer; no new version)", "yellow")
                            self.say(text)
                        case RunReport():
                            self.show_run(event)
                        case Failed(message=message):
                            self.say(
                                f"! {message} Your message is kept: /retry sends it again.",
                                "bold red",
                            )
        finally:
            if live is not None:
                live.stop()

    def show_version(self, session: Session, version: Version) -> None:
        language = self.service.language(session.language)
        if self.interactive:
            self.console.rule(describe(session, version), style="cyan")
            self.console.print(
                Syntax(version.code, language.fence, theme="monokai", word_wrap=True)
            )
        else:
            self.say(f"── {describe(session, version)}")
            self.say(fence(version.code, language.fence))
        if version.note:
            self.say(version.note, "italic")

    async def _help(self, _: str) -> None:
        self.say(HELP)

    async def _new(self, _: str) -> None:
        self.session = None
        self.say("The next message starts a new snippet.", "dim")

    async def _snippets(self, _: str) -> None:
        sessions = await self.service.list_sessions(self.caller)
        if not sessions:
            self.say("No snippets yet.")
        for s in sessions:
            mark = "*" if self.session and s.id == self.session.id else " "
            self.say(f"{mark}{s.id:>5}  {s.language:<10} v{s.version_count:<3} {s.title}")

    async def _show(self, arg: str) -> None:
        session = self._current()
        if arg and not arg.isdigit():
            raise UserError("Usage: /show [VERSION-NUMBER]")
        session, version = await self.service.show(
            session.id, number=int(arg) if arg else None, caller=self.caller
        )
        if version is None:
            self.say("This session has no version yet.")
        else:
            self.show_version(session, version)

    async def _retry(self, _: str) -> None:
        session = self._current()
        request = self.service.failed_request(session.id)
        if request is None:
            self.say("Nothing to retry: the last request did not fail.")
            return
        await self.render(self.service.turn(session.id, self.caller, request))

    async def _run(self, arg: str) -> None:
        if arg and not arg.isdigit():
            raise UserError("Usage: /run [VERSION-NUMBER]")
        report = await self.runs.run(
            self._current().id,
            self.caller,
            number=int(arg) if arg else None,
            on_queued=self._queued,
        )
        self.show_run(report)

    async def _test(self, _: str) -> None:
        self.say("… asking the model for unit tests", "dim")
        self.show_run(await self.runs.test(self._current().id, self.caller, on_queued=self._queued))

    async def _fix(self, _: str) -> None:
        await self.render(self.runs.fix(self._current().id, self.caller))

    async def _repair(self, _: str) -> None:
        self.say("… testing, then fixing until the tests pass", "dim")
        await self.render(self.runs.repair(self._current().id, self.caller, on_queued=self._queued))

    def _queued(self, position: int) -> None:
        self.say(f"… the sandbox is busy; you are #{position} in line", "dim")

    def show_run(self, report: RunReport) -> None:
        if report.tests:
            self.say("── the tests", "cyan")
            self.say(fence(report.tests, self.service.language(report.session.language).fence))
        self.say(render_run(report, limit=100_000), "green" if report.result.passed else "yellow")

    async def _delete(self, _: str) -> None:
        session = await self.service.delete(self._current().id, self.caller)
        self.session = None
        self.say(f"Deleted session {session.id} ({session.title}).")

    def _current(self) -> Session:
        if self.session is None:
            raise UserError("No snippet yet: type what the code should do first.")
        return self.session
