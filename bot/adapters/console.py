"""The terminal adapter behind ``codethread chat``: a surface over rich, and the commands.

The first line starts a session, each later line is feedback that makes the next version, and
lines starting with ``/`` are commands. On a terminal the answer streams live with syntax
highlighting (rich); with piped input the output is plain text, each version one fenced block,
so that it can be read by scripts. The presenter shows everything, the same way it does in
chat; errors are one-line messages and the session stays usable. The terminal user runs the
bot themselves, so they are a trusted caller (any model reference).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.syntax import Syntax

from bot.adapters import console_caller
from bot.codeblocks import close_open_fence, fence
from bot.core import SessionService
from bot.errors import UserError
from bot.files import MAX_FILE_BYTES
from bot.present import Presenter, attachments, words
from bot.present.views import (
    Closed,
    FailureCard,
    Notice,
    RunCard,
    Status,
    VersionCard,
    View,
    Writing,
)
from bot.run_options import parse_run
from bot.values import Caller, Upload
from storage import Session, SessionKey

__all__ = ["ConsoleChat", "ConsoleSurface", "console_caller"]


class ConsoleSurface:
    """Views as terminal output: a live region while the model writes, then plain output."""

    limit = 100_000

    def __init__(
        self, out: TextIO, *, interactive: bool, out_dir: Path = Path("codethread-out")
    ) -> None:
        self.interactive = interactive
        self.out_dir = out_dir  # where files runs made are saved, one folder per version
        self.edit_interval = 0.1 if interactive else 0.0
        self.console = Console(
            file=out,
            highlight=False,
            soft_wrap=True,
            force_terminal=interactive or None,
            no_color=not interactive,
        )
        self._live: Live | None = None
        self._ids = itertools.count(1)
        #: refusals and failures shown so far (piped mode exits non-zero when there were any)
        self.problems = 0

    def escape(self, text: str) -> str:
        return text

    def say(self, text: str, style: str = "") -> None:
        if self.interactive:
            self.console.print(text, style=style or None, markup=False)
        else:
            self.console.out(text, highlight=False)

    async def post(self, view: View) -> int:
        self._show(view)
        await self._save(view)
        return next(self._ids)

    async def edit(self, handle: int, view: View) -> None:
        self._show(view)
        await self._save(view)

    async def _save(self, view: View) -> None:
        """A run's files, under ``codethread-out/<session>-<version>/``; the paths said."""
        if not isinstance(view, RunCard) or not view.outputs:
            return
        folder = self.out_dir / f"{view.session_id}-{view.number}"
        paths = await asyncio.to_thread(_write_outputs, folder, view)
        self.say(attachments.saved(paths), "dim")

    async def remove(self, handle: int) -> None:
        self._stop()

    async def tell(self, view: View) -> None:
        problem = isinstance(view, Notice) and view.problem
        self.problems += problem
        self.say(f"! {view.text}" if problem else view.text, "bold red" if problem else "")

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        return {}

    def mention(self, user: str) -> str:
        return user

    async def close(self, session: Session, notice: Closed) -> None:
        return None

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _show(self, view: View) -> None:
        if isinstance(view, Writing):
            if self.interactive:
                if self._live is None:
                    self._live = Live(console=self.console, refresh_per_second=8, transient=True)
                    self._live.start()
                shown = (
                    _Waiting(view.summary)
                    if view.pending
                    else Markdown(close_open_fence(view.text))
                )
                self._live.update(shown)
            return
        self._stop()
        self.problems += isinstance(view, FailureCard)
        if isinstance(view, Status):
            self.say(view.text, "dim")
        elif isinstance(view, VersionCard):
            self._version(view)
        else:
            self.say(view.text, _style(view))
        if hint := words.commands(view.actions):
            self.say(hint, "dim")

    def _version(self, card: VersionCard) -> None:
        if self.interactive:
            self.console.rule(card.header, style="cyan")
            self.console.print(Syntax(card.code, card.fence, theme="monokai", word_wrap=True))
        else:
            self.say(f"── {card.header}")
            self.say(fence(card.code, card.fence))
        if card.note:
            self.say(card.note, "italic")
        if "cut off" in card.text.rsplit("\n", 1)[-1]:
            self.say(card.text.rsplit("\n", 1)[-1], "yellow")


class _Waiting:
    """A spinner with the seconds since the request went out (before the first byte)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.since = time.monotonic()
        self.spinner = Spinner("dots")

    def __rich__(self) -> Spinner:
        self.spinner.update(text=f"{self.label} {time.monotonic() - self.since:.0f} s")
        return self.spinner


def _style(view: View) -> str:
    if isinstance(view, RunCard):
        return "green" if view.passed else "yellow"
    return "bold red" if isinstance(view, FailureCard) else ""


class ConsoleChat:
    """One terminal conversation; ``run`` consumes input lines until they end or /quit.

    ``ok`` turns False when a turn or command failed (piped mode exits non-zero then).
    """

    def __init__(
        self,
        sessions: SessionService,
        presenter: Presenter,
        *,
        out: TextIO,
        interactive: bool,
        language: str | None = None,
        model: str | None = None,
        session: Session | None = None,
        caller: Caller | None = None,
        confirm: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """``confirm`` asks the person a yes/no question (the terminal's /delete); piped
        input, where nobody can answer, has none."""
        self.confirm = confirm
        self.sessions = sessions
        self.presenter = presenter
        self.caller = caller or console_caller()
        self.language = language
        self.model = model
        self.session = session
        self.surface = ConsoleSurface(out, interactive=interactive)
        self._opening: SessionKey | None = None  # the thread of a session being opened

    @property
    def ok(self) -> bool:
        """True while no turn or command failed (piped mode's exit status)."""
        return self.surface.problems == 0

    async def run(self, lines: AsyncIterator[str]) -> None:
        if self.session is not None:
            session = self.session
            resuming = words.CONSOLE["resuming"].format(id=session.id, title=session.title)
            self.surface.say(resuming, "dim")
        async for raw in lines:
            text = raw.strip()
            if not text:
                continue
            if not await self._handle(text):
                return

    async def _handle(self, text: str) -> bool:
        """One message or command; on a terminal, Ctrl-C cancels it and the chat goes on."""
        work = asyncio.ensure_future(self._one(text))
        loop = asyncio.get_running_loop()
        if self.surface.interactive:
            loop.add_signal_handler(signal.SIGINT, work.cancel)
        try:
            return await work
        except asyncio.CancelledError:
            if not work.cancelled():
                raise  # the chat itself is being cancelled
            if self.session is None and self._opening is not None:  # it may exist by now
                self.session = await self.sessions.find(self._opening)
            self.surface.say(words.CONSOLE["cancelled"], "dim")
            return True
        finally:
            if self.surface.interactive:
                loop.remove_signal_handler(signal.SIGINT)

    async def _one(self, text: str) -> bool:
        try:
            if text.startswith("/"):
                return await self.command(text)
            await self.message(text)
        except UserError as err:
            await self.presenter.fail(self.surface, err)
        return True

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
            "/diff": self._diff,
            "/revert": self._revert,
            "/run": self._run,
            "/attach": self._attach,
            "/files": self._files,
            "/test": self._test,
            "/fix": self._fix,
            "/repair": self._repair,
            "/help": self._help,
        }
        if name in ("/quit", "/exit"):
            return False
        action = actions.get(name)
        if action is None:
            raise UserError(words.CONSOLE["unknown"].format(name=name, help=words.HELP))
        await action(arg)
        return True

    async def message(self, text: str) -> None:
        if self.session is None:
            checked = self.sessions.check(
                self.caller, prompt=text, language=self.language, model=self.model
            )
            key = SessionKey(
                platform=self.caller.platform,
                workspace=self.caller.workspace,
                channel=self.caller.channel,
                thread=uuid.uuid4().hex,
            )
            self._opening = key
            begin = self.presenter.turn(
                self.surface, lambda: self.sessions.open(self.caller, key, checked), request=text
            )
            outcome = await begin
            # a first turn refused before it started stored nothing: the next line starts anew
            self.session = outcome.session if outcome else await self.sessions.find(key)
            return
        session = self.session
        outcome = await self.presenter.turn(
            self.surface, lambda: self.sessions.turn(session, self.caller, text)
        )
        if outcome is not None:
            self.session = outcome.session

    def _current(self) -> Session:
        if self.session is None:
            raise UserError(words.CONSOLE["no_snippet"])
        return self.session

    async def _help(self, _: str) -> None:
        self.surface.say(words.HELP)

    async def _new(self, _: str) -> None:
        self.session = None
        self.surface.say(words.CONSOLE["new"], "dim")

    async def _snippets(self, _: str) -> None:
        await self.presenter.list(self.surface, self.caller)

    async def _show(self, arg: str) -> None:
        number = _number(arg, "/show [VERSION-NUMBER]")
        await self.presenter.show_version(self.surface, self.caller, self._current().id, number)

    async def _retry(self, _: str) -> None:
        stream = self.sessions.retry(self.caller, self._current().id)
        await self.presenter.show(self.surface, stream)

    async def _diff(self, arg: str) -> None:
        words_ = arg.split()
        if len(words_) > 2 or not all(w.isdigit() for w in words_):
            raise UserError(words.CONSOLE["usage"].format(usage="/diff [A] [B]"))
        old, new = ([int(w) for w in words_] + [None, None])[:2]
        if len(words_) == 1:  # one number: that version against the latest
            old, new = int(words_[0]), None
        await self.presenter.compare(self.surface, self.caller, self._current().id, old, new)

    async def _revert(self, arg: str) -> None:
        number = _number(arg, "/revert N")
        if outcome := await self.presenter.revert(
            self.surface, self.caller, self._current().id, number
        ):
            self.session = outcome.session

    async def _run(self, arg: str) -> None:
        """``/run [N] [--stdin FILE] [-- ARG…]``: the file is read here, by the person who
        runs the bot (the sandbox itself never sees their files)."""
        options = parse_run(arg, usage="/run [N] [--stdin FILE] [-- ARG…]")
        stdin = ""
        if options.stdin is not None:
            try:
                stdin = await asyncio.to_thread(_read_text, options.stdin)
            except (OSError, UnicodeDecodeError) as err:
                problem = words.CONSOLE["unreadable"].format(path=options.stdin, err=err)
                raise UserError(problem) from None
        await self.presenter.run(
            self.surface,
            self.caller,
            self._current().id,
            number=options.number,
            stdin=stdin,
            args=options.args,
        )

    async def _attach(self, arg: str) -> None:
        """``/attach PATH``: a file of the person running the bot, read here, for the snippet."""
        if not arg:
            raise UserError(words.CONSOLE["usage"].format(usage="/attach PATH"))
        session = self._current()
        try:
            upload = await asyncio.to_thread(_read_upload, arg)
        except OSError as err:
            raise UserError(words.CONSOLE["unreadable"].format(path=arg, err=err)) from None
        await self.presenter.attach(self.surface, self.caller, session, [upload])

    async def _files(self, _: str) -> None:
        await self.presenter.files(self.surface, self.caller, self._current().id)

    async def _test(self, _: str) -> None:
        await self.presenter.test(self.surface, self.caller, self._current().id, number=None)

    async def _fix(self, _: str) -> None:
        stream = self.presenter.runs.fix(self._current().id, self.caller)
        if outcome := await self.presenter.show(self.surface, stream):
            self.session = outcome.session

    async def _repair(self, _: str) -> None:
        await self.presenter.repair(self.surface, self.caller, self._current().id)

    async def _delete(self, _: str) -> None:
        session = self._current()
        question = words.CONSOLE["confirm_delete"].format(id=session.id, title=session.title)
        if self.confirm is not None and not await self.confirm(question):
            self.surface.say(words.CONSOLE["kept"], "dim")
            return
        await self.presenter.delete(self.surface, self.caller, session.id)
        self.session = None


def _read_text(name: str) -> str:
    return Path(name).expanduser().read_text()


def _read_upload(name: str) -> Upload:
    path = Path(name).expanduser()
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        data = file.read() if size <= MAX_FILE_BYTES else None
    return Upload(name=path.name, size=size, data=data)


def _write_outputs(folder: Path, view: RunCard) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in view.outputs:
        path = folder / item.filename  # a run's names are plain (no "/", no leading dot)
        path.write_bytes(item.payload)
        paths.append(str(path))
    return paths


def _number(arg: str, usage: str) -> int | None:
    if arg and not arg.isdigit():
        raise UserError(words.CONSOLE["usage"].format(usage=usage))
    return int(arg) if arg else None
