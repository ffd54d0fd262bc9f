"""What the Slack adapter does in a workspace once a request is acknowledged.

:class:`SlackSessions` holds the work behind each handler of
:class:`~bot.adapters.slack_adapter.SlackAdapter`: opening a session under a parent message,
turning thread replies into versions streamed into one message each, the buttons, and
``/snippets``. It calls the core and the Web API and raises :class:`~bot.errors.UserError` for
refusals; reporting failures to people is the adapter's job, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.render import loading_text, render_version, tests_filename
from bot.adapters.slack_blocks import (
    MESSAGE_LIMIT,
    Message,
    code_modal,
    escape,
    failed_message,
    needs_tests_file,
    noncode_message,
    parent_message,
    run_message,
    show_message,
    snippet_type,
    snippets_list,
    status_message,
    version_message,
    writing_message,
)
from bot.adapters.slack_live import LiveMessage, QueueNotice
from bot.core import SessionService
from bot.errors import SessionNotFound, UserError
from bot.languages import Languages
from bot.prompts import TESTABLE
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

__all__ = [
    "PLATFORM",
    "CodeRequest",
    "SlackBot",
    "SlackSessions",
    "parse_code",
    "session_ref",
    "version_ref",
]

log = logging.getLogger("codethread.slack")

PLATFORM = "slack"
SNIPPETS_HELP = (
    "`/snippets` lists your snippets here · `/snippets show ID` · `/snippets run ID` · "
    "`/snippets delete ID`"
)
MENTION_HELP = (
    "Tell me what the code should do, e.g. `@codethread python parse a CSV and sum column 3`, "
    "or use `/code` for a form."
)
NOT_A_SESSION = (
    "This thread is not a snippet session. Start one with `/code PROMPT`, or mention me in the "
    "channel (outside a thread)."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRequest:
    language: str | None
    model: str | None
    prompt: str


_WORD = re.compile(r"\s*(\S+)")


def parse_code(text: str, languages: Languages) -> CodeRequest:
    """``[language|language:X] [model:REF] PROMPT``, in either order; the rest is the prompt."""
    language: str | None = None
    model: str | None = None
    rest = text.strip()
    for _ in range(2):
        match = _WORD.match(rest)
        if match is None:
            break
        word = match.group(1)
        name, sep, value = word.partition(":")
        if sep and name.lower() == "model" and model is None:
            model = value
        elif sep and name.lower() in ("language", "lang") and language is None:
            language = value
        elif not sep and language is None and word in languages:
            language = word
        else:
            break
        rest = rest[match.end() :].lstrip(" \t")
    if model == "":
        raise UserError("Name a model after `model:`, e.g. `model:gpt-4o-mini`.")
    return CodeRequest(language=language, model=model, prompt=rest.strip())


def version_ref(value: str) -> tuple[int, int | None]:
    """A button's ``SESSION:VERSION`` (the version may be missing: the latest)."""
    session_id, _, number = value.partition(":")
    return session_ref(session_id), int(number) if number.isdigit() else None


def session_ref(text: str) -> int:
    """A snippet number as people type it (``12`` or ``#12``)."""
    word = text.strip().removeprefix("#")
    if not word.isdigit():
        raise UserError(f"Give a snippet number, e.g. `/snippets show 12`. {SNIPPETS_HELP}")
    return int(word)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackBot:
    """Who the bot is in a workspace (from bolt's authorization of the request)."""

    user: str | None = None
    bot_id: str | None = None
    url: str | None = None  # the workspace's URL, for links to threads

    def wrote(self, message: dict[str, Any]) -> bool:
        return bool(
            (self.user and message.get("user") == self.user)
            or (self.bot_id and message.get("bot_id") == self.bot_id)
        )


class SlackSessions:
    def __init__(
        self,
        service: SessionService,
        runs: RunService,
        client: AsyncWebClient,
        *,
        edit_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.runs = runs
        self.client = client
        self.edit_interval = edit_interval
        self._busy: set[tuple[str, int]] = set()  # (Test or Fix, session) in progress

    # -- starting ----------------------------------------------------------------------------

    async def code(self, caller: Caller, text: str, trigger_id: str) -> None:
        """``/code``: a session from the text, or the form when there is no prompt."""
        request = parse_code(text, self.service.languages)
        if request.prompt:
            await self.open(caller, request)
            return
        language = self.service.language(request.language)
        model = self.service.engines.resolve(request.model)
        view = code_modal(
            channel=caller.channel,
            languages=self.service.languages,
            models=[(st.spec.name, st.spec.description) for st in self.service.models()],
            language=language.name,
            model=model.name,
            max_chars=self.service.settings.max_prompt_chars,
        )
        await self.client.views_open(trigger_id=trigger_id, view=view)

    async def mention(self, caller: Caller, text: str) -> None:
        """``@codethread PROMPT`` outside a thread."""
        request = parse_code(text, self.service.languages)
        if not request.prompt:
            raise UserError(MENTION_HELP)
        await self.open(caller, request)

    async def open(self, caller: Caller, request: CodeRequest) -> None:
        """Post the parent message, open the session in its thread, make version 1."""
        checked = self.service.check(
            caller, prompt=request.prompt, language=request.language, model=request.model
        )
        language, model, prompt = checked.language, checked.model, checked.prompt
        parent = parent_message(
            user=caller.user, language=language, model=model.name, prompt=prompt
        )
        posted = await self.client.chat_postMessage(
            channel=caller.channel, text=parent.text, blocks=parent.blocks, unfurl_links=False
        )
        channel, ts = str(posted["channel"]), str(posted["ts"])
        key = SessionKey(platform=PLATFORM, workspace=caller.workspace, channel=channel, thread=ts)
        try:
            session = await self.service.start(
                caller=caller, key=key, prompt=prompt, language=language.name, model=model.name
            )
        except UserError:  # refused after all (e.g. an allow-list): take the parent back
            await self._withdraw(channel, ts)
            raise
        try:
            await self.turn(session.id, caller, prompt, channel, ts)
        except UserError:  # the first turn was refused (e.g. rate limit): leave nothing behind
            await self.service.delete(session.id, caller)
            await self._withdraw(channel, ts)
            raise

    async def _withdraw(self, channel: str, ts: str) -> None:
        with contextlib.suppress(SlackApiError):
            await self.client.chat_delete(channel=channel, ts=ts)

    # -- turns -------------------------------------------------------------------------------

    async def reply(
        self, caller: Caller, ts: str, thread_ts: str, text: str, *, mention: bool
    ) -> None:
        """A person's message in a thread: feedback when the thread is a session, else ignored."""
        key = SessionKey(
            platform=PLATFORM, workspace=caller.workspace, channel=caller.channel, thread=thread_ts
        )
        session = await self.service.find(key)
        if session is None:
            if mention:
                raise UserError(NOT_A_SESSION)
            return
        # A mention in a thread arrives twice (app_mention and message): answer it once.
        if not text or not self.service.first_delivery(f"slack:ts:{caller.channel}:{ts}"):
            return
        await self.turn(session.id, caller, text, caller.channel, thread_ts)

    async def retry(self, caller: Caller, ref: str) -> None:
        """The Retry button of a failed turn: send its kept request again."""
        session = await self._here(session_ref(ref), caller)
        request = self.service.failed_request(session.id)
        if request is None:
            raise UserError("Nothing to retry: the last request of this snippet did not fail.")
        await self.turn(session.id, caller, request, session.key.channel, session.key.thread)

    async def turn(
        self, session_id: int, caller: Caller, text: str, channel: str, thread_ts: str
    ) -> None:
        """Run one turn and show it as one message in the thread, edited as the model writes."""
        await self._stream(self.service.turn(session_id, caller, text), channel, thread_ts)

    async def _stream(self, turn: AsyncGenerator[Reply], channel: str, thread_ts: str) -> None:
        """Show a turn's events (a reply's, a retry's, a fix's) as one message in the thread."""
        live = LiveMessage(self.client, channel, thread_ts, interval=self.edit_interval)
        started: Started | None = None
        try:
            async with contextlib.aclosing(turn) as events:
                async for event in events:
                    match event:
                        case Waiting(position=n):
                            earlier = f"{n} earlier request{'s' if n != 1 else ''}"
                            await live.show(status_message(f":hourglass: Waiting for {earlier} …"))
                        case Loading():
                            await live.show(status_message(f":hourglass: {loading_text(event)}"))
                        case Started(number=number, model=model):
                            started = event
                            await live.show(writing_message(number=number, model=model, text=""))
                        case Progress(text=so_far) if started and live.due():
                            await live.show(
                                writing_message(
                                    number=started.number, model=started.model, text=so_far
                                )
                            )
                        case Done(session=session, version=version, complete=complete):
                            await self._show_version(live, session, version, complete)
                        case NonCode(text=answer):
                            await live.show(noncode_message(answer), final=True)
                        case Failed(session=session, message=message):
                            await live.show(failed_message(session, message), final=True)
        except Exception:
            if live.ts is not None:  # leave no message "writing" forever
                with contextlib.suppress(Exception):
                    await live.show(status_message(":warning: This answer was interrupted."))
            raise

    async def _show_version(
        self, live: LiveMessage, session: Session, version: Version, complete: bool
    ) -> None:
        language = self.service.language(session.language)
        rendered = render_version(session, version, language, limit=MESSAGE_LIMIT)
        message = version_message(
            session,
            rendered,
            number=version.number,
            complete=complete,
            can_run=self.runs.can_run,
            can_test=self.runs.can_run and language.name in TESTABLE,
        )
        await live.show(message, final=True)
        if rendered.filename and rendered.file_content is not None:
            await self.client.files_upload_v2(
                channel=live.channel,
                thread_ts=live.thread_ts,
                content=rendered.file_content,
                filename=rendered.filename,
                title=f"Snippet #{session.id}, version {version.number}",
                snippet_type=snippet_type(language),
            )

    # -- buttons and /snippets ---------------------------------------------------------------

    async def run(self, caller: Caller, value: str) -> None:
        """The Run button (``SESSION:VERSION``): run that version, post the result in the thread."""
        session_id, number = version_ref(value)
        session = await self._here(session_id, caller)
        live = LiveMessage(
            self.client, session.key.channel, session.key.thread, interval=self.edit_interval
        )
        async with self._sandboxed(live) as queued:
            report = await self.runs.run(session.id, caller, number=number, on_queued=queued)
            await queued.wait()
            await self._show_run(live, report)

    async def test(self, caller: Caller, value: str) -> None:
        """The Test button: unit tests of the latest version by its model, run, posted in the
        thread (a "writing tests" message first, since the model takes a while)."""
        session_id, number = version_ref(value)
        session = await self._here(session_id, caller)
        self._latest(session, number, "Test")
        live = LiveMessage(
            self.client, session.key.channel, session.key.thread, interval=self.edit_interval
        )
        with self._once(
            "test", session.id, "Unit tests for this snippet are already on their way."
        ):
            async with self._sandboxed(live) as queued:
                await live.show(
                    status_message(
                        f":test_tube: Writing unit tests for version {session.version_count} "
                        f"with `{escape(session.model)}` …"
                    )
                )
                report = await self.runs.test(session.id, caller, on_queued=queued)
                await queued.wait()
                await self._show_run(live, report)

    async def fix(self, caller: Caller, value: str) -> None:
        """The Fix button of a failed run or test: the next version, made from that failure and
        streamed into the thread like a reply's."""
        session_id, number = version_ref(value)
        session = await self._here(session_id, caller)
        self._latest(session, number, "Fix")
        with self._once("fix", session.id, "A fix of this snippet is already being written."):
            await self._stream(
                self.runs.fix(session.id, caller), session.key.channel, session.key.thread
            )

    def _latest(self, session: Session, number: int | None, button: str) -> None:
        """Test and Fix work on a session's latest version; refuse a button of an older one."""
        if number is not None and number != session.version_count:
            raise UserError(
                f"{button} works on the latest version, and version {number} of snippet "
                f"#{session.id} is no longer the latest: use the buttons of version "
                f"{session.version_count}."
            )

    @contextlib.contextmanager
    def _once(self, kind: str, session_id: int, busy: str) -> Iterator[None]:
        """One Test (or Fix) of a session at a time: a second click while one runs is refused."""
        if (kind, session_id) in self._busy:
            raise UserError(busy)
        self._busy.add((kind, session_id))
        try:
            yield
        finally:
            self._busy.discard((kind, session_id))

    @contextlib.asynccontextmanager
    async def _sandboxed(self, live: LiveMessage) -> AsyncIterator[QueueNotice]:
        """A run's message: its place in line while it waits, taken back if the run fails."""
        queued = QueueNotice(live)
        try:
            yield queued
        except Exception:
            await queued.wait()
            if live.ts is not None:  # the refusal or failure is told to the clicker instead
                with contextlib.suppress(SlackApiError):
                    await self.client.chat_delete(channel=live.channel, ts=live.ts)
            raise
        finally:
            queued.cancel()  # done by now, unless the job was cancelled

    async def _show_run(self, live: LiveMessage, report: RunReport) -> None:
        """A run's or test's result in the thread; long tests go next to it as a file."""
        language = self.service.language(report.session.language)
        filename = tests_filename(language)
        as_file = bool(report.tests) and needs_tests_file(report.tests)
        message = run_message(
            report, tests_info=language.fence, tests_file=filename if as_file else None
        )
        await live.show(message, final=True)
        if as_file:
            await self.client.files_upload_v2(
                channel=live.channel,
                thread_ts=live.thread_ts,
                content=report.tests,
                filename=filename,
                title=f"Tests of version {report.version.number} of #{report.session.id}",
                snippet_type=snippet_type(language),
            )

    async def delete(self, caller: Caller, session_id: int, bot: SlackBot) -> Session:
        """Delete a session (owner only) and take the bot's messages out of its thread."""
        await self._owned(session_id, caller)
        session = await self.service.delete(session_id, caller)
        try:
            await self._clear_thread(session, caller, bot)
        except SlackApiError as err:
            log.warning("session %d deleted; clearing its thread failed: %s", session_id, err)
        return session

    async def snippets(self, caller: Caller, text: str, bot: SlackBot) -> Message:
        """``/snippets [list|show ID|run ID|delete ID]``: the answer, for the caller's eyes only."""
        verb, _, arg = text.strip().partition(" ")
        verb = verb.lower() or "list"
        if verb == "list":
            sessions = await self.service.list_sessions(caller)
            return snippets_list(sessions, await self._links(sessions, bot))
        if verb == "show":
            session = await self._owned(session_ref(arg), caller)
            session, version = await self.service.show(session.id, caller=caller)
            rendered = None
            if version is not None:
                language = self.service.language(session.language)
                rendered = render_version(session, version, language, limit=MESSAGE_LIMIT - 200)
            link = (await self._links([session], bot)).get(session.id)
            return show_message(session, rendered, link)
        if verb == "run":
            session = await self._owned(session_ref(arg), caller)
            return run_message(await self.runs.run(session.id, caller, scoped=True))
        if verb == "delete":
            session = await self.delete(caller, session_ref(arg), bot)
            return status_message(f"Deleted snippet #{session.id} ({escape(session.title)}).")
        return status_message(SNIPPETS_HELP)

    async def _here(self, session_id: int, caller: Caller) -> Session:
        """A session of this workspace, whoever owns it (buttons work for the whole thread)."""
        session = await self.service.get(session_id)
        if session.key.platform != PLATFORM or session.key.workspace != caller.workspace:
            raise SessionNotFound(session_id)
        return session

    async def _owned(self, session_id: int, caller: Caller) -> Session:
        """The caller's own session in this workspace (the core refuses others' sessions)."""
        session = await self.service.get(session_id, caller)
        if session.key.platform != PLATFORM or session.key.workspace != caller.workspace:
            raise SessionNotFound(session_id)
        return session

    async def _clear_thread(self, session: Session, caller: Caller, bot: SlackBot) -> None:
        channel, thread = session.key.channel, session.key.thread
        ours: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.client.conversations_replies(
                channel=channel, ts=thread, cursor=cursor, limit=200
            )
            ours += [m for m in page.get("messages") or [] if bot.wrote(m) and m["ts"] != thread]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        for message in ours:
            for file in message.get("files") or []:
                with contextlib.suppress(SlackApiError):
                    await self.client.files_delete(file=file["id"])
            with contextlib.suppress(SlackApiError):
                await self.client.chat_delete(channel=channel, ts=message["ts"])
        gone = status_message(
            f":wastebasket: Snippet #{session.id} was deleted by <@{caller.user}>."
        )
        await self.client.chat_update(
            channel=channel, ts=thread, text=gone.text, blocks=gone.blocks
        )

    async def _links(self, sessions: list[Session], bot: SlackBot) -> dict[int, str]:
        """Links to the sessions' threads: built from the workspace URL, else asked of Slack."""
        if bot.url:
            base = bot.url.rstrip("/")
            return {
                s.id: f"{base}/archives/{s.key.channel}/p{s.key.thread.replace('.', '')}"
                for s in sessions
            }

        async def one(session: Session) -> tuple[int, str | None]:
            try:
                found = await self.client.chat_getPermalink(
                    channel=session.key.channel, message_ts=session.key.thread
                )
            except SlackApiError:
                return session.id, None
            return session.id, str(found["permalink"])

        found = await asyncio.gather(*(one(s) for s in sessions))
        return {sid: link for sid, link in found if link}
