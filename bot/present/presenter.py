"""The presenter: the one place that matches on the core's events and shows them on a surface.

Adapters hand it a surface (where, and for whom) and the core call to make; it shows the
answer as one live message per turn or run (status lines while the turn waits, the answer as
it streams, the version, the run or the failure at the end, each with the actions the core
offers), tells the person who acted about refusals and errors, privately, and never lets an
exception escape to the platform library. Every surface gets the same behaviour this way:
the same words, the same place in line, the same buttons.

:meth:`Presenter.turn` calls the core *before* it returns a coroutine, so a turn takes its
place in its thread's line at the moment the adapter received the event, however long the
adapter then waits to run the coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from bot.core import SessionService, StartCheck
from bot.errors import NothingToDo, UserError
from bot.present import attachments, words
from bot.present.live import LiveMessage
from bot.present.surface import Handle, StatusLine, Streams, Surface
from bot.present.surface import Stream as Streamed
from bot.present.views import RequestPost, View
from bot.runs import RunService
from bot.values import (
    Action,
    Attached,
    Caller,
    Done,
    Failed,
    Loading,
    NonCode,
    Progress,
    Reply,
    RunReport,
    Started,
    Upload,
    Waiting,
)
from engines import EngineError
from storage import Session, SessionKey

__all__ = ["Outcome", "Presenter"]

log = logging.getLogger("codethread.present")

Outcome = Done | NonCode | Failed | RunReport
Stream = AsyncIterator[Reply | RunReport]
#: a person's one-time link to the web page (bot.web.auth.store_login_url, bound to its URL)
HistoryLinks = Callable[[Caller], Awaitable[str]]
HISTORY_LINK_MINUTES = 10


class Presenter:
    def __init__(
        self,
        sessions: SessionService,
        runs: RunService,
        *,
        history: HistoryLinks | None = None,
    ) -> None:
        """``history`` makes a person's one-time link to the web page (View history)."""
        self.sessions = sessions
        self.runs = runs
        self._history = history

    # -- turns -------------------------------------------------------------------------------

    def turn(
        self,
        surface: Surface[Handle],
        begin: Callable[[], Stream],
        *,
        quiet: tuple[type[Exception], ...] = (),
        request: str = "",
    ) -> Coroutine[Any, Any, Outcome | None]:
        """Start a core call now (``begin``: its place in line is taken here) and return the
        coroutine that shows it. Errors of type ``quiet`` end it silently; ``request`` is
        quoted back when the call is refused, so nothing typed is lost."""
        try:
            stream = begin()
        except Exception as err:
            return self._refused(surface, err, request)
        return self.show(surface, stream, quiet=quiet)

    async def _refused(
        self, surface: Surface[Handle], error: Exception, request: str
    ) -> Outcome | None:
        await self.fail(surface, error, request=request)
        return None

    async def show(
        self,
        surface: Surface[Handle],
        stream: Stream,
        *,
        quiet: tuple[type[Exception], ...] = (),
    ) -> Outcome | None:
        """Show a turn's events (a reply's, a retry's, a fix's, a repair's); the last result.

        Where the surface streams natively (:class:`Streams`), the answer is appended to a
        streamed message and the result ends it; where it has a status line
        (:class:`StatusLine`), waiting, loading and writing are shown there."""
        live: LiveMessage[Handle] = LiveMessage(surface)
        outcome: Outcome | None = None
        started: Started | None = None
        streamed: Streamed | None = None
        try:
            async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
                async for event in events:
                    match event:
                        case Attached():
                            await surface.post(attachments.attached(event, escape=surface.escape))
                        case Waiting(position=position):
                            await _status_or_show(surface, live, words.waiting(position))
                        case Loading():
                            await _status_or_show(surface, live, words.loading(event))
                        case Started(number=number, model=model):
                            started = event
                            writing = words.writing(number, model, "", limit=surface.limit)
                            await _status(surface, writing.text)
                            streamed = await _stream(surface)
                            if streamed is None:
                                await live.show(writing)
                            elif live.posted:  # a status line's message gives way to it
                                await live.withdraw()
                        case Progress(delta=delta) if streamed is not None:
                            streamed.append(delta)
                        case Progress(text=text) if started is not None:
                            await live.show(  # built only when its edit is due
                                functools.partial(
                                    words.writing,
                                    started.number,
                                    started.model,
                                    text,
                                    limit=surface.limit,
                                )
                            )
                        case Done() | NonCode() | Failed() | RunReport():
                            outcome = event
                            result = self._result(event, surface.limit)
                            if streamed is not None:
                                await _conclude(surface, streamed, result)
                            else:
                                await live.finish(result)
                            live, started, streamed = LiveMessage(surface), None, None
        except asyncio.CancelledError:  # shutdown: never leave "writing …" behind
            durable = bool(getattr(surface, "durable", False))  # a job: performed again
            await asyncio.shield(_abandon(live, streamed, words.interrupted(durable=durable)))
            raise
        except quiet:
            await live.withdraw()
        except Exception as err:
            if live.posted or streamed is not None:  # the turn's own message says what happened
                self._log(err)
                await _abandon(live, streamed, words.problem(err, limit=surface.limit))
            else:
                await self.fail(surface, err)
        finally:
            live.cancel()
        await _status(surface, "")
        return outcome

    def _result(self, event: Outcome, limit: int) -> View:
        match event:
            case Done(session=session, version=version, complete=complete):
                return words.version_card(
                    session,
                    version,
                    self.sessions.language(session.language),
                    actions=self.runs.version_actions(session, version),
                    complete=complete,
                    limit=limit,
                )
            case NonCode(session=session, text=text, language=other):
                wanted = self.sessions.language(session.language).label
                return words.noncode(text, limit=limit, language=other, wanted=wanted)
            case Failed():
                return words.failure(event)
            case RunReport():
                language = self.sessions.language(event.session.language)
                return words.run_card(event, language, limit=limit)

    @staticmethod
    def request_post(surface: Surface[Handle], caller: Caller, checked: StartCheck) -> RequestPost:
        """The public post a new session's thread hangs from (the adapter posts it)."""
        return words.request_post(
            who=surface.mention(caller.user),
            language=checked.language,
            model=checked.model.name,
            prompt=checked.prompt,
            limit=surface.limit,
            escape=surface.escape,
        )

    # -- buttons -----------------------------------------------------------------------------

    async def act(self, surface: Surface[Handle], caller: Caller, action: Action) -> None:
        """A button press: the one entry point every surface's buttons go through."""
        sid = action.session_id
        match action.kind:
            case "run":
                await self.run(surface, caller, sid, number=action.number)
            case "input":  # a surface that can ask for input does so before it gets here
                await self.run(surface, caller, sid, number=action.number)
            case "test":
                await self.test(surface, caller, sid, number=action.number)
            case "fix":
                await self.show(surface, self.runs.fix(sid, caller, number=action.number))
            case "retry":
                await self.show(surface, self.sessions.retry(caller, sid, action.failure))
            case "delete":
                await self.delete(surface, caller, sid)
            case "diff":
                await self.compare(surface, caller, sid, None, action.number)
            case "revert":
                await self.revert(surface, caller, sid, action.number)
            case "download":
                await self.download(surface, caller, sid, action.number)
            case "history":
                await self.history(surface, caller)

    async def history(self, surface: Surface[Handle], caller: Caller) -> None:
        """View history: a link for the person who pressed it, told only to them (the card
        is public; the link signs in whoever opens it, as that person)."""
        try:
            if self._history is None:
                raise NothingToDo("The web page is not set up here (no public URL).")
            url = await self._history(caller)
            await surface.tell(words.history_link(url, minutes=HISTORY_LINK_MINUTES))
        except Exception as err:
            await self.fail(surface, err)

    async def compare(
        self,
        surface: Surface[Handle],
        caller: Caller,
        session_id: int,
        old: int | None,
        new: int | None,
        *,
        private: bool = False,
    ) -> None:
        """A diff of two versions, in the thread (or, ``private``, for their owner only)."""
        try:
            comparison = await self.sessions.diff(session_id, caller, old, new, owned=private)
            card = words.diff_card(comparison, limit=surface.limit)
            await (surface.tell(card) if private else surface.post(card))
        except Exception as err:
            await self.fail(surface, err)

    async def revert(
        self, surface: Surface[Handle], caller: Caller, session_id: int, number: int | None
    ) -> Outcome | None:
        """A new version with version ``number``'s code, shown like any new version."""
        try:
            if number is None:
                raise UserError("Say which version to go back to, e.g. `/revert 2`.")
            session = await self.sessions.get(session_id, caller)
            stream = self.sessions.revert(session, caller, number)
        except Exception as err:
            await self.fail(surface, err)
            return None
        return await self.show(surface, stream)

    async def download(
        self, surface: Surface[Handle], caller: Caller, session_id: int, number: int | None
    ) -> None:
        """A version's code as a file, in the thread."""
        try:
            session = await self.sessions.get(session_id, caller)
            version = await self.sessions.version(session, number)
            if version is None:
                raise UserError(f"Snippet #{session.id} has no version yet.")
            language = self.sessions.language(session.language)
            await surface.post(words.download(session, version, language))
        except Exception as err:
            await self.fail(surface, err)

    async def repair(self, surface: Surface[Handle], caller: Caller, session_id: int) -> None:
        """Test, fix and test again until the tests pass; then say how it ended."""
        reports: list[RunReport] = []

        async def tracked() -> AsyncIterator[Reply | RunReport]:
            async for event in self.runs.repair(session_id, caller):
                if isinstance(event, RunReport):
                    reports.append(event)
                yield event

        await self.show(surface, tracked())
        if reports:
            summary = words.repair_summary(reports, rounds=self.runs.repair_attempts)
            await surface.tell(summary)

    async def run(
        self,
        surface: Surface[Handle],
        caller: Caller,
        session_id: int,
        *,
        number: int | None = None,
        private: bool = False,
        stdin: str = "",
        args: Sequence[str] = (),
    ) -> RunReport | None:
        """Run a version with ``stdin`` and ``args``; the result in the thread (or,
        ``private``, for the caller only, who must own the session: ``/snippets run``)."""
        return await self._sandboxed(
            surface,
            lambda queued: self.runs.run(
                session_id,
                caller,
                number=number,
                scoped=private,
                stdin=stdin,
                args=args,
                on_queued=queued,
            ),
            private=private,
        )

    async def test(
        self, surface: Surface[Handle], caller: Caller, session_id: int, *, number: int | None
    ) -> RunReport | None:
        """Model-written unit tests of the latest version, run, in the thread."""

        async def work(queued: Callable[[int], None]) -> RunReport:
            return await self.runs.test(session_id, caller, number=number, on_queued=queued)

        async def before(live: LiveMessage[Handle]) -> None:
            session = await self.sessions.get(session_id, caller)
            self.runs.check_test(session, number)  # refused: nothing is posted
            await live.show(words.writing_tests(session, number or session.version_count))

        return await self._sandboxed(surface, work, before=before)

    async def _sandboxed(
        self,
        surface: Surface[Handle],
        work: Callable[[Callable[[int], None]], Coroutine[Any, Any, RunReport]],
        *,
        private: bool = False,
        before: Callable[[LiveMessage[Handle]], Coroutine[Any, Any, None]] | None = None,
    ) -> RunReport | None:
        """A run's message: its place in the sandbox's line while it waits, then the result;
        taken back when the run is refused or fails (the caller is told why, privately)."""
        live: LiveMessage[Handle] = LiveMessage(surface)
        notice = _QueueNotice(live, enabled=not private)
        try:
            if before is not None:
                await before(live)
            report = await work(notice)
            await notice.settle()
            card = self._result(report, surface.limit)
            if private:
                await surface.tell(card)
            else:
                await live.finish(card)
            return report
        except asyncio.CancelledError:
            await asyncio.shield(live.withdraw())
            raise
        except Exception as err:
            await notice.settle()
            await live.withdraw()
            await self.fail(surface, err)
            return None
        finally:
            notice.cancel()
            live.cancel()

    async def delete(self, surface: Surface[Handle], caller: Caller, session_id: int) -> None:
        """Delete a session (owner only), say so, and tidy its thread."""
        try:
            session = await self.sessions.delete(session_id, caller)
            await surface.tell(words.deleted(session, escape=surface.escape))
        except Exception as err:
            await self.fail(surface, err)
            return
        try:
            await surface.close(session, words.closed(session, by=surface.mention(caller.user)))
        except Exception as err:  # the session is gone; its thread keeps old messages
            log.warning("session %d deleted; tidying its thread failed: %s", session.id, err)

    # -- /snippets ---------------------------------------------------------------------------

    async def list(
        self, surface: Surface[Handle], caller: Caller, *, search: str | None = None
    ) -> None:
        """The caller's snippets here (``search``: those whose title or requests match)."""
        try:
            sessions = await self.sessions.list_sessions(caller, search=search)
            links = await surface.links(sessions) if sessions else {}
            await surface.tell(
                words.snippet_list(sessions, links, limit=surface.limit, escape=surface.escape)
            )
        except Exception as err:
            await self.fail(surface, err)

    async def show_version(
        self, surface: Surface[Handle], caller: Caller, session_id: int, number: int | None
    ) -> None:
        try:
            session, version = await self.sessions.show(session_id, number=number, caller=caller)
            link = (await surface.links([session])).get(session.id)
            language = self.sessions.language(session.language)
            actions = self.runs.version_actions(session, version) if version else ()
            await surface.tell(
                words.shown(
                    session, version, language, link=link, limit=surface.limit, actions=actions
                )
            )
        except Exception as err:
            await self.fail(surface, err)

    # -- durable turns -------------------------------------------------------------------------

    async def resume(
        self,
        surface: Surface[Handle],
        handle: Handle,
        key: SessionKey,
        request: str,
        since: float,
    ) -> bool:
        """A durable turn is performed again after a restart; ``handle`` is the message its
        last attempt was writing. That message shows the version the attempt stored, when it
        got that far (True: nothing is to be asked again), or says the answer comes anew
        (False: the turn goes on)."""
        answered = await self.sessions.answered(key, request, since)
        if answered is None:
            await self.restarted(surface, handle)
            return False
        session, version = answered
        view = words.version_card(
            session,
            version,
            self.sessions.language(session.language),
            actions=self.runs.version_actions(session, version),
            limit=surface.limit,
        )
        await self._replace(surface, handle, view)
        return True

    async def restarted(
        self, surface: Surface[Handle], handle: Handle, *, answer: bool = True
    ) -> None:
        """The message a durable job's last attempt was writing says it was interrupted by a
        restart and comes again below (an answer, or with ``answer`` False a button's work)."""
        await self._replace(surface, handle, words.resumed(answer=answer))

    @staticmethod
    async def _replace(surface: Surface[Handle], handle: Handle, view: View) -> None:
        try:
            await surface.edit(handle, view)
        except words.PlatformRefused:  # the message is gone: say it anew
            await surface.post(view)

    # -- files -------------------------------------------------------------------------------

    async def attach(
        self, surface: Surface[Handle], caller: Caller, session: Session, uploads: Sequence[Upload]
    ) -> None:
        """Files for a session outside a turn (``/attach``): stored now, said in the thread."""
        try:
            event = await self.sessions.attach(session, caller, uploads)
            await surface.post(attachments.attached(event, escape=surface.escape))
        except Exception as err:
            await self.fail(surface, err)

    async def files(self, surface: Surface[Handle], caller: Caller, session_id: int) -> None:
        """``/files``: the session's files, for the caller."""
        try:
            session, items = await self.sessions.files(session_id, caller)
            await surface.tell(attachments.file_list(session, items, escape=surface.escape))
        except Exception as err:
            await self.fail(surface, err)

    # -- errors ------------------------------------------------------------------------------

    async def fail(
        self, surface: Surface[Handle], error: BaseException, *, request: str = ""
    ) -> None:
        """Tell the person who acted what went wrong, privately; log what is ours to fix."""
        self._log(error)
        try:
            await surface.tell(words.problem(error, request=request, limit=surface.limit))
        except Exception as err:  # nowhere left to report it: log, without any token
            log.warning("could not tell someone about a problem: %s", type(err).__name__)

    @staticmethod
    def _log(error: BaseException) -> None:
        if isinstance(error, UserError | EngineError):
            log.info("refused or failed: %s", error)
        elif isinstance(error, words.PlatformRefused):
            log.warning("the platform refused a call: %s", error)
        else:
            log.error("unexpected error while answering", exc_info=error)


# -- optional surface capabilities --------------------------------------------------------------


async def _status(surface: Surface[Any], text: str) -> bool:
    """``text`` in the surface's status line; False where it has none (or it refused)."""
    if not isinstance(surface, StatusLine):
        return False
    try:
        return await surface.status(text)
    except Exception as err:  # a nicety: the view is shown as a message instead
        log.info("could not set a status: %s", err)
        return False


async def _status_or_show(surface: Surface[Handle], live: LiveMessage[Handle], view: View) -> None:
    if not await _status(surface, view.text):
        await live.show(view)


async def _stream(surface: Surface[Any]) -> Streamed | None:
    if not isinstance(surface, Streams):
        return None
    try:
        return await surface.stream()
    except words.PlatformRefused as err:  # edits, as on any surface
        log.info("could not start a streamed message: %s", err)
        return None


async def _conclude(surface: Surface[Any], streamed: Streamed, view: View) -> None:
    """End a streamed message with the result; posted anew when the platform refuses."""
    try:
        await streamed.stop(view)
    except words.PlatformRefused as err:
        log.warning("could not end the streamed message (%s); posting the result anew", err)
        await surface.post(view)


async def _abandon(live: LiveMessage[Any], streamed: Streamed | None, view: View) -> None:
    """Best effort, on an error or shutdown: never leave "writing …" behind."""
    if streamed is None:
        await live.abandon(view)
        return
    with contextlib.suppress(Exception):
        await streamed.stop(view)


class _QueueNotice:
    """``on_queued`` for a sandbox run: shows the caller's place in line in the run's message.

    The pool calls it synchronously, again each time the caller moves up; one task shows the
    newest position, paced like every other edit.
    """

    def __init__(self, live: LiveMessage[Any], *, enabled: bool) -> None:
        self.live = live
        self.enabled = enabled
        self._position: int | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, position: int) -> None:
        self._position = position
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._show())

    async def _show(self) -> None:
        shown: int | None = None
        while self._position != shown:
            shown = self._position
            assert shown is not None
            await self.live.show(words.sandbox_queue(shown))

    async def settle(self) -> None:
        """Let the last position be shown (so the result comes after it)."""
        if self._task is not None:
            try:
                await self._task
            except Exception as err:  # the result still goes out; the notice was a nicety
                log.warning("could not show a place in line: %s", type(err).__name__)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
