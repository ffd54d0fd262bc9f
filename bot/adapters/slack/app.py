"""The Slack adapter, on slack-bolt's ``AsyncApp``: sessions live in threads.

- ``/code [language] [model:REF] PROMPT`` and ``@codethread PROMPT`` post a parent message in
  the channel (who asked, language, model, request) once the core has checked the request (a
  refusal is told privately and posts nothing); the session lives in its thread, keyed
  ``(slack, team, channel, parent ts)``. A bare ``/code`` opens a form.
- Every person's message in a session thread is the next turn. The bot's own messages, other
  bots, edits, deletions and threads that are not sessions are ignored, except that a mention
  of the bot in such a thread gets a hint. A mention in a thread arrives twice (``app_mention``
  and ``message``) and is answered once.
- Files posted in a session thread become the session's files (:mod:`bot.files`): each is
  downloaded from its ``url_private_download`` with the bot token (only from Slack's file hosts
  or the configured API's; never one over :data:`~bot.files.MAX_FILE_BYTES`, which the core
  refuses by name) and goes to the core with the message's text, if any. The message keeps its
  place in the thread's line: while its files download, later messages of the thread wait for
  it. A file Slack could not hand over is told to the person who posted it. (The first message
  of a direct-message thread opens its session first; its files are attached after that.)
- Slack's AI-app surface: in the app's assistant pane and its direct messages every thread is
  a session, keyed by the conversation and the thread's ts; its first message starts it (a
  message outside a thread starts one in its own thread), later ones are its turns. A new
  assistant thread is offered a few prompts to start from, the session's title becomes the
  thread's, and waiting, loading and writing show as the thread's status.
- One bolt middleware counts every request in the metrics and drops redeliveries: an Events API
  ``event_id`` seen before (a Slack retry, with ``X-Slack-Retry-Num``, or a Socket Mode
  redelivery) and a slash command's one-time ``trigger_id`` seen before. A retry whose first
  delivery never reached this process is handled, since nothing answered it yet.
- Listeners acknowledge and hand the work to :class:`~bot.adapters.base.Jobs`; a thread's
  turn takes its place in line in the listener itself, before any await. The presenter shows
  it all on a :class:`~bot.adapters.slack.surface.SlackSurface`; every button goes through
  :meth:`~bot.present.Presenter.act` (values of older buttons, ``12:3``, still work).
- Durable (with ``serve``'s worker): a thread reply, a ``/code`` with a prompt and a button
  press are jobs written before Slack hears "ok" (their message ts or trigger id the
  delivery), so a redelivery does nothing and a process killed while acting on one is taken
  over by the next (:mod:`bot.jobs`): the messages it had posted are noted as it goes (the
  parent, the answer), so the next attempt says so in the answer's message and goes on from
  what was stored. Messages to the app (direct messages, the assistant pane) are jobs too,
  in their thread's lane. A bare ``/code`` (the form) and form submissions are not: a form's
  trigger expires in seconds, and a lost submission is typed again.
- The Run with input… button opens a form (standard input, arguments); its submission runs
  the version in the button's thread, as the Run button does. Arguments that do not split like
  a shell's keep the form open with the reason under the field.
- ``/snippets [list|search TEXT|show ID [N]|diff ID [A] [B]|run ID [N] [--stdin TEXT]
  [-- ARG…]|files ID|delete ID|help]`` answers privately.
- Socket Mode when an app token is set (no HTTP route then), else HTTP mode on
  ``POST /slack/events`` with bolt's signature check. The Web API client retries Slack's 429s
  after ``Retry-After``, and connection errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.base import AdapterHealth, ChatAdapter, Jobs
from bot.adapters.slack.commands import (
    MODAL,
    RUN_MODAL,
    CodeRequest,
    code_modal,
    modal_values,
    parse_code,
    run_modal,
    run_modal_values,
    snippet_ref,
    to_plain,
)
from bot.adapters.slack.pace import Pace, RateLimitRetries
from bot.adapters.slack.surface import (
    ACTION_PREFIX,
    Message,
    SlackBot,
    SlackSurface,
    refusals,
)
from bot.core import SessionService, TurnStream
from bot.errors import ConfigError, NotASession, UserError
from bot.files import MAX_FILE_BYTES
from bot.jobs import Journal, Worker
from bot.metrics import Metrics
from bot.present import Notice, Outcome, PlatformRefused, Presenter, words
from bot.present.journal import Journaled
from bot.run_options import parse_args, parse_run
from bot.values import Action, ActionKind, Caller, Upload
from storage import Job, SessionKey

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

__all__ = ["SlackAdapter"]

log = logging.getLogger("codethread.slack")

PLATFORM = "slack"
#: auth.test errors that mean the token itself is refused (retrying cannot help)
_REFUSED_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
_TOKEN_FIX = "set SLACK_BOT_TOKEN to the app's xoxb- token (OAuth & Permissions)"
_APP_TOKEN_FIX = "set SLACK_APP_TOKEN to an xapp- token with connections:write"
JOB_KIND = "slack.thread"  # a person's message in a channel thread, as a durable job
PRESS_KIND = "slack.press"  # a button pressed under a result, as a durable job
CODE_KIND = "slack.code"  # a /code command with a prompt, as a durable job
DM_KIND = "slack.dm"  # a message to the app (a direct message, the assistant pane)
_BUTTON = re.compile(rf"^{ACTION_PREFIX}({'|'.join(get_args(ActionKind))})$")
#: the hosts a file's URL may name for the bot token to go with it (besides the API's own)
_FILE_HOSTS = ("slack.com", "slack-gov.com")
_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_RUN_USAGE = "/snippets run ID [N] [--stdin TEXT] [-- ARG…]"

#: a message's text and the files that came with it (Slack's file objects)
Files = Sequence[dict[str, Any]]
#: a direct message waiting for its thread's first one: where, who, text, files, and what
#: to set once it is shown (a durable job waits for it)
_Later = tuple["SlackSurface", Caller, str, Files, "asyncio.Future[None] | None"]


def _by_person(event: dict[str, Any], bot_user: str | None) -> bool:
    """A person's message (not an edit, a deletion, a join, not a bot's)."""
    return (
        event.get("subtype") in (None, "thread_broadcast", "file_share")
        and not event.get("bot_id")
        and not event.get("hidden")
        and bool(event.get("user"))
        and event.get("user") != bot_user
    )


def _is_reply(event: dict[str, Any], bot_user: str | None) -> bool:
    """A person's message inside a thread (not the parent)."""
    return (
        _by_person(event, bot_user)
        and bool(event.get("thread_ts"))
        and event.get("thread_ts") != event.get("ts")
    )


def _kind(body: dict[str, Any]) -> str:
    """What a request is, for the metrics: ``command_code``, ``message``, ``action_run`` …"""
    if "command" in body:
        return "command_" + str(body["command"]).lstrip("/")
    kind = str(body.get("type") or "other")
    if kind == "event_callback":
        return str((body.get("event") or {}).get("type") or "event")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return "action_" + str(actions[0].get("action_id", "")).removeprefix(ACTION_PREFIX)
    return "modal" if kind == "view_submission" else kind


def _delivery(body: dict[str, Any]) -> str | None:
    """The id that is the same in every delivery of one request (None: nothing to dedupe)."""
    if body.get("event_id"):
        return f"slack:event:{body['event_id']}"
    if "command" in body and body.get("trigger_id"):  # a replaying proxy, a resent request
        return f"slack:trigger:{body['trigger_id']}"
    return None


class SlackAdapter(ChatAdapter):
    name = "slack"

    def __init__(
        self,
        *,
        sessions: SessionService,
        presenter: Presenter,
        metrics: Metrics,
        bot_token: str,
        signing_secret: str | None = None,
        app_token: str | None = None,
        api_url: str | None = None,
        edit_interval: float = 1.0,
        worker: Worker | None = None,
    ) -> None:
        if not (app_token or signing_secret):
            raise ConfigError(
                "Slack needs SLACK_SIGNING_SECRET (HTTP mode on /slack/events) or "
                "SLACK_APP_TOKEN (Socket Mode)."
            )
        self.sessions = sessions
        self.presenter = presenter
        self.metrics = metrics
        self.edit_interval = edit_interval
        self.jobs = Jobs(self.name)
        self.worker = worker  # thread replies are durable jobs when there is one
        self.pace = Pace(metrics=metrics)  # Slack's rate limits, shared by every answer
        self._known: OrderedDict[SessionKey, None] = OrderedDict()  # direct-message sessions
        #: threads whose first message is in hand, with the messages that came after it
        self._opening: dict[SessionKey, list[_Later]] = {}
        #: threads with a message whose files are downloading: set once it has its place
        self._fetching: dict[SessionKey, asyncio.Event] = {}
        self._file_hosts = {urlsplit(api_url).hostname} if api_url else set()
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url or AsyncWebClient.BASE_URL,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                RateLimitRetries(self.pace, max_retry_count=3),
            ],
        )
        self.bolt = AsyncApp(
            name="codethread",
            client=self.client,
            signing_secret=signing_secret or "",
            process_before_response=True,  # listeners only ack and spawn; the work runs after
            logger=logging.getLogger("codethread.slack.bolt"),
        )
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._app_token = app_token
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._http_session: aiohttp.ClientSession | None = None
        self._register()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def socket_mode(self) -> bool:
        return bool(self._app_token)

    def routes(self) -> list[web.RouteDef]:
        return [] if self.socket_mode else [web.post("/slack/events", self._http)]

    async def start(self) -> None:
        self._session()
        if self.worker is not None:
            self.worker.handle(JOB_KIND, self._perform)
            self.worker.handle(PRESS_KIND, self._perform_press)
            self.worker.handle(CODE_KIND, self._perform_code)
            self.worker.handle(DM_KIND, self._perform_dm)
            self.worker.start()
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        """Check the bot token (``auth.test``), then, in Socket Mode, connect. A token Slack
        refuses marks the adapter failed for good (``/readyz`` says which and how to fix it),
        with no retrying in a loop; the rest of ``serve`` goes on."""
        try:
            await self.client.auth_test()
        except SlackApiError as err:
            error = str(err.response.get("error", "")) if err.response else ""
            if error in _REFUSED_TOKEN:
                self._failed(f"the bot token was refused ({error}): {_TOKEN_FIX}")
                return
            log.warning("Slack's auth.test failed (%s); going on", error or type(err).__name__)
        except Exception as err:  # no network yet: the socket's own retries take over
            log.warning("could not reach Slack (%s); going on", type(err).__name__)
        if not self._app_token:
            self.health = AdapterHealth("connected")  # HTTP mode: Slack posts to us
            return
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(self.bolt, self._app_token)
        try:
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # untyped
        except SlackApiError as err:  # e.g. a revoked SLACK_APP_TOKEN
            error = str(err.response.get("error", "")) if err.response else type(err).__name__
            self._failed(f"Socket Mode refused the app token ({error}): {_APP_TOKEN_FIX}")
            return
        except Exception as err:
            self._failed(f"could not connect in Socket Mode ({type(err).__name__})")
            return
        self.health = AdapterHealth("connected")
        log.info("connected to Slack in Socket Mode")

    def _failed(self, reason: str) -> None:
        self.health = AdapterHealth("failed", reason)
        log.error("Slack adapter stopped: %s", reason)

    async def drain(self) -> None:
        if self.worker is not None:
            await self.worker.idle()
        await self.jobs.drain()

    async def aclose(self) -> None:
        await self.jobs.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
            self._connecting = None
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._http_session is not None:
            await self._http_session.close()
            self._http_session = None
            self.client.session = None

    async def _http(self, request: web.Request) -> web.Response:
        """Slack's POSTs. The signature is checked (slack_sdk's verifier, as bolt would)
        before anything reads the body, so unsigned or malformed requests get 401 without a
        trace in the log; a signed body bolt cannot read gets 400."""
        body = await request.text()
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        verifier = self._verifier
        if not stamp.isdigit() or verifier is None or not verifier.is_valid(body, stamp, signature):
            self._count("unsigned")
            return web.Response(status=401)
        try:
            response = await self.bolt.async_dispatch(await to_bolt_request(request))
        except (ValueError, KeyError, TypeError):  # signed, yet not what Slack sends
            log.warning("a signed Slack request could not be read")
            return web.Response(status=400)
        return await to_aiohttp_response(response)

    # -- every request: count it, drop it when it was delivered before ------------------------

    def _register(self) -> None:
        bolt = self.bolt
        bolt.use(self._deliveries)
        bolt.command("/code")(self._on_command)
        bolt.command("/snippets")(self._on_command)
        bolt.event("app_mention")(self._on_mention)
        bolt.event("message")(self._on_message)
        bolt.event("assistant_thread_started")(self._on_assistant_thread)
        bolt.view(MODAL)(self._on_modal)
        bolt.view(RUN_MODAL)(self._on_run_modal)
        bolt.action(_BUTTON)(self._on_button)
        bolt.error(self._on_bolt_error)

    async def _deliveries(
        self,
        body: dict[str, Any],
        request: AsyncBoltRequest,
        response: BoltResponse,
        next: Callable[[], Awaitable[None]],  # bolt passes arguments by name
    ) -> BoltResponse:
        self._count(_kind(body))
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        if body.get("type") == "event_callback" and retry not in (None, "0"):
            self._count("retry")
        delivery = None if self._becomes_job(body) else _delivery(body)
        if delivery is not None and not await self.sessions.claim_delivery(delivery):
            self._count("duplicate")
            log.info("dropped a repeated delivery %s (retry %s)", delivery, retry or "-")
            return BoltResponse(status=200, body="")
        await next()
        return response

    def _becomes_job(self, body: dict[str, Any]) -> bool:
        """A request the worker will write down as a job (a thread message, a ``/code`` with
        a prompt): the job's own unique delivery dedupes it, in the same write. A claim of its
        event id first would be a second write, and a process killed between the two would
        leave the claim without the job, so Slack's retry of it would be dropped as seen."""
        if self.worker is None:
            return False
        if "command" in body:
            return body["command"] == "/code" and bool(str(body.get("text") or "").strip())
        event = body.get("event") or {}
        if event.get("type") == "message" and event.get("channel_type") == "im":
            return True  # every message to the app (its own and edits are ignored anyway)
        return (
            event.get("type") in ("message", "app_mention")
            and bool(event.get("thread_ts"))
            and event.get("thread_ts") != event.get("ts")
        )

    def _count(self, kind: str) -> None:
        self.metrics.events.labels(platform=PLATFORM, kind=kind).inc()

    async def _on_bolt_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack request failed in a listener: %r (type %s)", error, body.get("type"))

    # -- who and where -----------------------------------------------------------------------

    def _caller(self, context: AsyncBoltContext, user: str, channel: str) -> Caller:
        return _member(context.team_id or "", user, channel)

    async def _interrupted(self, journal: Journal) -> Message | None:
        """The message a dead attempt at this job was writing (None: this is the first
        attempt, or it wrote none), its stream ended first: Slack refuses to update a message
        that is still streaming."""
        previous = journal.previous
        if not (journal.resumed and isinstance(previous, dict)):
            return None
        handle = Message(**previous)
        with contextlib.suppress(SlackApiError):  # no stream left open: nothing to end
            await self.client.chat_stopStream(channel=handle.channel, ts=handle.ts)
        return handle

    def _surface(
        self,
        where: AsyncBoltContext | SlackBot,
        caller: Caller,
        *,
        thread: str | None = None,
        respond: AsyncRespond | None = None,
        assistant: bool = False,
    ) -> SlackSurface:
        """A surface for ``caller`` here; ``where`` is the request's context, or the bot as
        a durable job recorded it."""
        bot = where if isinstance(where, SlackBot) else _bot(where)
        return SlackSurface(
            client=self.client,
            team=caller.workspace,
            channel=caller.channel,
            user=caller.user,
            thread=thread,
            respond=respond,
            bot=bot,
            pace=self.pace,
            assistant=assistant,
            edit_interval=self.edit_interval,
        )

    # -- starting a session ------------------------------------------------------------------

    async def _on_command(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        """``/code`` and ``/snippets``; their answers go through the command's response_url."""
        await ack()
        caller = self._caller(context, command["user_id"], command["channel_id"])
        surface = self._surface(context, caller, respond=respond)
        text = command.get("text") or ""
        if command.get("command") == "/snippets":
            self.jobs.spawn(self._snippets(surface, caller, text))
            return
        trigger = command.get("trigger_id", "")
        if self.worker is not None and trigger and text.strip():  # a bare /code: the form
            payload = {"text": to_plain(text), "team": caller.workspace, "user": caller.user,
                       "channel": caller.channel, "response_url": command.get("response_url"),
                       "bot": dataclasses.asdict(_bot(context))}  # fmt: skip
            if not await self.worker.accept(
                delivery=f"slack:code:{trigger}", lane=f"slack:code:{trigger}",
                kind=CODE_KIND, payload=payload,
            ):  # fmt: skip
                self._count("duplicate")
            return
        self.jobs.spawn(self._code(surface, caller, to_plain(text), trigger))

    async def _perform_code(self, job: Job, journal: Journal) -> None:
        """A ``/code`` written down by :meth:`_on_command`, performed now. The parent message
        and the answer in its thread are noted as they are posted, so that an attempt after a
        crash goes on from there: it says so in the answer's message, then opens the session
        (or, stored already, answers it, or shows the version stored)."""
        payload = job.payload
        caller = _member(payload["team"], payload["user"], payload["channel"])
        url = payload.get("response_url")
        surface = self._surface(
            SlackBot(**payload["bot"]), caller,
            respond=AsyncRespond(response_url=url) if url else None,
        )  # fmt: skip
        parent = journal.earlier("parent")
        if not (journal.resumed and isinstance(parent, dict)):
            await self._start(
                Journaled(surface, functools.partial(journal.note, "parent"), dataclasses.asdict),
                caller, parse_code(payload["text"], self.sessions.languages),
                answer=lambda thread: Journaled(thread, journal.message, dataclasses.asdict),
            )  # fmt: skip
            return
        posted = Message(**parent)
        thread = surface.in_thread(posted.ts)
        key = SessionKey(
            platform=PLATFORM, workspace=caller.workspace, channel=posted.channel,
            thread=posted.ts,
        )  # fmt: skip
        request = parse_code(payload["text"], self.sessions.languages)
        handle = await self._interrupted(journal)
        if handle is not None and await self.presenter.resume(
            thread, handle, key, request.prompt, job.created_at
        ):
            return
        journaled = Journaled(thread, journal.message, dataclasses.asdict)
        session = await self.sessions.find(key)
        if session is None:  # the parent was posted, the session not stored: open it here
            try:
                checked = self.sessions.check(
                    caller, prompt=request.prompt, language=request.language,
                    model=request.model,
                )  # fmt: skip
            except Exception as err:
                await self.presenter.fail(journaled, err, request=request.prompt)
                return
            await self.presenter.turn(
                journaled,
                lambda: self.sessions.open(caller, key, checked),
                request=checked.prompt,
            )
            return
        await self.presenter.turn(
            journaled,
            lambda: self.sessions.turn(session, caller, request.prompt),
            request=request.prompt,
        )

    async def _code(self, surface: SlackSurface, caller: Caller, text: str, trigger: str) -> None:
        """``/code``: a session from the text, or the form when there is no prompt."""
        try:
            request = parse_code(text, self.sessions.languages)
            if not request.prompt:
                view = code_modal(
                    channel=caller.channel,
                    languages=self.sessions.languages,
                    models=[(st.spec.name, st.spec.description) for st in self.sessions.models()],
                    language=self.sessions.language(request.language).name,
                    model=self.sessions.model(request.model).name,
                    max_chars=self.sessions.max_prompt_chars,
                )
                with refusals():
                    await self.client.views_open(trigger_id=trigger, view=view)
                return
        except Exception as err:
            await self.presenter.fail(surface, err)
            return
        await self._start(surface, caller, request)

    async def _on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("bot_id") or not event.get("user"):
            return
        caller = self._caller(context, event["user"], event["channel"])
        text = to_plain(event.get("text") or "", bot_user=context.bot_user_id)
        if event.get("thread_ts") and event["thread_ts"] != event.get("ts"):
            await self._in_thread(context, caller, event, text, mention=True)
            return
        surface = self._surface(context, caller)
        try:
            request = parse_code(text, self.sessions.languages)
        except UserError as err:
            self.jobs.spawn(self.presenter.fail(surface, err))
            return
        if not request.prompt:
            self.jobs.spawn(self._say(surface, words.MENTION_HELP))
            return
        self.jobs.spawn(self._start(surface, caller, request))

    async def _on_modal(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        channel, language, model, prompt = modal_values(view)
        caller = self._caller(context, body["user"]["id"], channel)
        try:  # a refusal keeps the form open, with the reason under the prompt
            self.sessions.check(caller, prompt=prompt, language=language, model=model)
        except Exception as err:
            await ack(response_action="errors", errors={"prompt": words.explain(err)})
            return
        await ack()
        request = CodeRequest(language=language, model=model, prompt=prompt)
        self.jobs.spawn(self._start(self._surface(context, caller), caller, request))

    async def _start(
        self,
        surface: SlackSurface | Journaled[Message],
        caller: Caller,
        request: CodeRequest,
        *,
        answer: Callable[[SlackSurface], SlackSurface | Journaled[Message]] = lambda s: s,
    ) -> None:
        """Check, post the parent message, then open the session in its thread (on the
        surface ``answer`` makes of the thread's: a durable job's notes what it posts)."""
        try:
            checked = self.sessions.check(
                caller, prompt=request.prompt, language=request.language, model=request.model
            )
            parent = await surface.post(self.presenter.request_post(surface, caller, checked))
        except Exception as err:
            await self.presenter.fail(surface, err, request=request.prompt)
            return
        key = SessionKey(
            platform=PLATFORM, workspace=caller.workspace, channel=parent.channel, thread=parent.ts
        )
        outcome = await self.presenter.turn(
            answer(surface.in_thread(parent.ts)),
            lambda: self.sessions.open(caller, key, checked),
            request=checked.prompt,
        )
        if outcome is None and await self.sessions.find(key) is None:  # refused after all
            with contextlib.suppress(PlatformRefused):
                await surface.remove(parent)

    # -- in a thread -------------------------------------------------------------------------

    async def _on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("channel_type") == "im" and _by_person(event, context.bot_user_id):
            await self._in_dm(context, event)
            return
        if not _is_reply(event, context.bot_user_id):
            return
        caller = self._caller(context, event["user"], event["channel"])
        raw, bot_user = event.get("text") or "", context.bot_user_id
        mention = bool(bot_user) and f"<@{bot_user}" in raw
        await self._in_thread(
            context, caller, event, to_plain(raw, bot_user=bot_user), mention=mention
        )

    async def _in_thread(
        self,
        context: AsyncBoltContext,
        caller: Caller,
        event: dict[str, Any],
        text: str,
        *,
        mention: bool,
    ) -> None:
        """A person's message in a thread: the next turn when the thread is a session; in any
        other thread silence, or a hint for a mention. With a worker, the message is a
        durable job first (written down before Slack hears "ok"; a duplicate is dropped
        there), performed by :meth:`_perform`; without, its place in line is taken now."""
        delivery = f"slack:ts:{caller.channel}:{event['ts']}"
        thread = str(event["thread_ts"])
        if self.worker is not None:
            payload = {"event": event, "bot": dataclasses.asdict(_bot(context)), "text": text,
                       "team": caller.workspace, "mention": mention}  # fmt: skip
            lane = f"{PLATFORM}:{caller.workspace}:{caller.channel}:{thread}"
            # False: a redelivery, the other of a mention's two events (app_mention and
            # message), or a message another replica took
            if not await self.worker.accept(
                delivery=delivery, lane=lane, kind=JOB_KIND, payload=payload
            ):
                self._count("duplicate")
            return
        if not self.sessions.first_delivery(delivery):
            return  # the other of a mention's two events (app_mention and message)
        surface = self._surface(context, caller, thread=thread)
        self.jobs.spawn(self._thread_turn(surface, caller, event, text, mention=mention))

    def _thread_turn(
        self,
        surface: SlackSurface | Journaled[Message],
        caller: Caller,
        event: dict[str, Any],
        text: str,
        *,
        mention: bool,
    ) -> Coroutine[Any, Any, Any]:
        key = SessionKey(
            platform=PLATFORM,
            workspace=caller.workspace,
            channel=caller.channel,
            thread=str(event["thread_ts"]),
        )
        files = event.get("files") or []
        return self._reply(
            surface,  # type: ignore[arg-type]  # a journaled surface is a SlackSurface's proxy
            caller, key, text, files, quiet=() if mention else (NotASession,),
        )  # fmt: skip

    async def _perform(self, job: Job, journal: Journal) -> None:
        """A thread message written down by :meth:`_in_thread`: its turn, now. Performed
        again after a crash, the message the first attempt was writing says so (or shows the
        version that attempt had stored, which is then not asked for again)."""
        payload = job.payload
        event = payload["event"]
        caller = _member(payload["team"], event["user"], event["channel"])
        thread = str(event["thread_ts"])
        surface = self._surface(SlackBot(**payload["bot"]), caller, thread=thread)
        previous = await self._interrupted(journal)
        if previous is not None:
            key = self._thread_key(caller, thread)
            if await self.presenter.resume(surface, previous, key, payload["text"], job.created_at):
                return
        journaled = Journaled(surface, journal.message, dataclasses.asdict)
        await self._thread_turn(
            journaled, caller, event, payload["text"], mention=payload["mention"]
        )

    def _reply(
        self,
        surface: SlackSurface,
        caller: Caller,
        key: SessionKey,
        text: str,
        files: Files,
        *,
        quiet: tuple[type[Exception], ...] = (),
    ) -> Coroutine[Any, Any, Any]:
        """A message as the thread's next turn, its place in line taken now (the coroutine
        returned shows it); with files (or while an earlier message's files download), as
        soon as its own are in hand and the earlier message has its place."""
        if not files and key not in self._fetching:
            return self.presenter.turn(
                surface,
                lambda: self.sessions.reply(caller, key, text),
                quiet=quiet,
                request=text,
            )
        earlier, placed = self._fetching.get(key), asyncio.Event()
        self._fetching[key] = placed
        return self._reply_with_files(surface, caller, key, text, files, quiet, earlier, placed)

    async def _reply_with_files(
        self,
        surface: SlackSurface,
        caller: Caller,
        key: SessionKey,
        text: str,
        files: Files,
        quiet: tuple[type[Exception], ...],
        earlier: asyncio.Event | None,
        placed: asyncio.Event,
    ) -> None:
        shown: Coroutine[Any, Any, Outcome | None] | None = None
        try:
            uploads: Sequence[Upload] = ()
            if files and await self.sessions.find(key) is not None:  # no session: no download
                uploads = await self._uploads(surface, files)
            if earlier is not None:
                await earlier.wait()
            if text.strip() or uploads or not files:
                shown = self.presenter.turn(
                    surface,
                    functools.partial(self.sessions.reply, caller, key, text, uploads=uploads),
                    quiet=quiet,
                    request=text,
                )
        finally:
            placed.set()
            if self._fetching.get(key) is placed:
                del self._fetching[key]
        if shown is not None:
            await shown

    # -- files people post ---------------------------------------------------------------------

    async def _uploads(self, surface: SlackSurface, files: Files) -> list[Upload]:
        """The files of a message, downloaded (all at once); one over the size limit is not
        downloaded (the core refuses it by name), one Slack would not hand over is told to
        the person who posted it and left out."""
        found = await asyncio.gather(*(self._upload(file) for file in files))
        uploads = [upload for upload in found if isinstance(upload, Upload)]
        failed = [error for error in found if isinstance(error, PlatformRefused)]
        for error in failed:
            await self.presenter.fail(surface, error)
        return uploads

    async def _upload(self, file: dict[str, Any]) -> Upload | PlatformRefused:
        name = _name(file)
        try:
            if file.get("file_access") == "check_file_info" and file.get("id"):
                with refusals():  # the event has only its id: Slack describes it on request
                    file = dict((await self.client.files_info(file=str(file["id"])))["file"])
                name = _name(file)
            size = int(file.get("size") or 0)
            if size > MAX_FILE_BYTES:
                return Upload(name=name, size=size, data=None)
            data = await self._download(file, name)
        except PlatformRefused as err:
            return err
        except Exception as err:  # an odd file object: that file is left out, not the turn
            log.warning("could not take a file from Slack: %s", type(err).__name__)
            return PlatformRefused("download_failed", name)
        if len(data) > MAX_FILE_BYTES:
            return Upload(name=name, size=len(data), data=None)
        return Upload(name=name, size=len(data), data=data)

    async def _download(self, file: dict[str, Any], name: str) -> bytes:
        """A file's bytes from Slack, with the bot token (sent to Slack's hosts only; aiohttp
        drops it on a redirect elsewhere); reading stops past the size limit."""
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        host = urlsplit(url).hostname or ""
        ours = host in self._file_hosts or any(
            host == h or host.endswith("." + h) for h in _FILE_HOSTS
        )
        if not url or not ours:  # an external file, or one gone (a tombstone)
            log.info("not downloading the file %s (mode %s)", file.get("id"), file.get("mode"))
            raise PlatformRefused("download_failed", name)
        headers = {"Authorization": f"Bearer {self.client.token}"}
        try:
            async with self._session().get(
                url, headers=headers, timeout=_DOWNLOAD_TIMEOUT
            ) as response:
                if response.status != 200:
                    log.warning("Slack answered HTTP %d for a file download", response.status)
                    raise PlatformRefused("download_failed", name)
                if response.content_type == "text/html" and not _is_html(file, name):
                    # Slack's sign-in page: the token may not read files (files:read)
                    log.warning("Slack answered a sign-in page for a file: is files:read granted?")
                    raise PlatformRefused("missing_permission", "files:read")
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_FILE_BYTES:
                        break
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("could not download a file from Slack: %s", type(err).__name__)
            raise PlatformRefused("download_failed", name) from None

    def _session(self) -> aiohttp.ClientSession:
        if self._http_session is None:
            self._http_session = aiohttp.ClientSession()
            self.client.session = self._http_session
        return self._http_session

    # -- the assistant pane and direct messages -----------------------------------------------

    async def _on_assistant_thread(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """A new thread in the app's pane: a few prompts to start from."""
        thread = event.get("assistant_thread") or {}
        user, channel = str(thread.get("user_id") or ""), str(thread.get("channel_id") or "")
        surface = self._surface(
            context, self._caller(context, user, channel), thread=thread.get("thread_ts")
        )
        names = [language.name for language in self.sessions.languages]
        self.jobs.spawn(surface.suggest(words.SUGGESTIONS_TITLE, words.suggestions(names)))

    async def _in_dm(self, context: AsyncBoltContext, event: dict[str, Any]) -> None:
        """A person's message to the app: each thread is a session (a message outside a thread
        starts one in its own thread). With a worker, a durable job first (its lane the
        thread's), performed by :meth:`_perform_dm`."""
        caller = self._caller(context, event["user"], event["channel"])
        delivery = f"slack:ts:{caller.channel}:{event['ts']}"
        thread = str(event.get("thread_ts") or event["ts"])
        text = to_plain(event.get("text") or "", bot_user=context.bot_user_id)
        if self.worker is not None:
            payload = {"event": event, "bot": dataclasses.asdict(_bot(context)), "text": text,
                       "team": caller.workspace, "thread": thread}  # fmt: skip
            lane = f"{PLATFORM}:{caller.workspace}:{caller.channel}:{thread}"
            if not await self.worker.accept(
                delivery=delivery, lane=lane, kind=DM_KIND, payload=payload
            ):
                self._count("duplicate")
            return
        if not self.sessions.first_delivery(delivery):
            return
        surface = self._surface(context, caller, thread=thread, assistant=True)
        self._dm_turn(
            surface, caller, self._thread_key(caller, thread), text, event.get("files") or []
        )

    @staticmethod
    def _thread_key(caller: Caller, thread: str) -> SessionKey:
        return SessionKey(
            platform=PLATFORM, workspace=caller.workspace, channel=caller.channel, thread=thread
        )

    async def _perform_dm(self, job: Job, journal: Journal) -> None:
        """A message to the app written down by :meth:`_in_dm`, answered now, in its thread's
        order (the worker may start the thread's next job meanwhile: its turn follows this
        one's, as :meth:`_dm_turn` orders them). Performed again after a crash, the message
        the first attempt was writing says so, or shows the version it had stored."""
        payload = job.payload
        event = payload["event"]
        caller = _member(payload["team"], event["user"], event["channel"])
        thread = str(payload["thread"])
        key = self._thread_key(caller, thread)
        bot = SlackBot(**payload["bot"])
        surface = self._surface(bot, caller, thread=thread, assistant=True)
        previous = await self._interrupted(journal)
        if previous is not None and await self.presenter.resume(
            surface, previous, key, payload["text"], job.created_at
        ):
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        journaled = Journaled(surface, journal.message, dataclasses.asdict)
        self._dm_turn(
            journaled,  # type: ignore[arg-type]  # a journaled surface is a SlackSurface's proxy
            caller, key, payload["text"], event.get("files") or [], done,
        )  # fmt: skip
        await done

    def _dm_turn(
        self,
        surface: SlackSurface,
        caller: Caller,
        key: SessionKey,
        text: str,
        files: Files,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        """The thread's next turn, its place in line taken now; while the thread's first
        message is being looked at (does it hold a session?), kept to follow that one.
        ``done`` is set once the turn has been shown (a durable job waits for it)."""
        if key in self._known:
            self.jobs.spawn(_settles(self._reply(surface, caller, key, text, files), done))
        elif key in self._opening:
            self._opening[key].append((surface, caller, text, files, done))
        else:
            self._opening[key] = []
            self.jobs.spawn(_settles(self._first(surface, caller, key, text, files), done))

    async def _first(
        self, surface: SlackSurface, caller: Caller, key: SessionKey, text: str, files: Files
    ) -> None:
        """The first message of a thread in this process: the session's next turn where the
        thread holds one already, else its start (its files stored before version 1)."""
        opening = False
        uploads: Sequence[Upload] = ()
        shown: Coroutine[Any, Any, Outcome | None]
        try:
            uploads = await self._uploads(surface, files) if files else ()
            begin: Callable[[], TurnStream] = functools.partial(
                self.sessions.reply, caller, key, text, uploads=uploads
            )
            if await self.sessions.find(key) is None:
                request = parse_code(text, self.sessions.languages)
                checked = self.sessions.check(
                    caller, prompt=request.prompt, language=request.language, model=request.model
                )
                begin = functools.partial(self.sessions.open, caller, key, checked, uploads=uploads)
                opening = True
            if files and not uploads and not text.strip():  # no file came: nothing to do
                shown, opening = _nothing(), False
            else:
                shown = self.presenter.turn(surface, begin, request=text)
            self._remember(key)
        except Exception as err:
            shown = self.presenter.fail(surface, err, request=text)
        finally:  # the messages that came meanwhile take their places now, in order
            for later in self._opening.pop(key):
                self._dm_turn(later[0], later[1], key, later[2], later[3], later[4])
        outcome = await shown
        session = getattr(outcome, "session", None)
        if opening and session is not None:
            await surface.title(session.title)
        elif opening and await self.sessions.find(key) is None:  # refused after all
            self._known.pop(key, None)

    def _remember(self, key: SessionKey) -> None:
        self._known[key] = None
        if len(self._known) > 10_000:
            self._known.popitem(last=False)

    # -- buttons and /snippets ---------------------------------------------------------------

    async def _on_button(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        kind = str(action.get("action_id", "")).removeprefix(ACTION_PREFIX)
        value = str(action.get("value", ""))
        decoded = Action.decode(value) or Action.decode(f"{kind}:{value}")  # older: "12:3"
        if decoded is None:
            log.info("ignored a %s button with the value %r", kind, value)
            return
        caller = self._caller(
            context, body["user"]["id"], (body.get("channel") or {}).get("id", "")
        )
        message, container = body.get("message") or {}, body.get("container") or {}
        thread = (
            message.get("thread_ts")
            or message.get("ts")
            or container.get("thread_ts")
            or container.get("message_ts")
        )
        surface = self._surface(context, caller, thread=thread)
        if decoded.kind == "input":  # the form first; its submission runs it
            form = run_modal(decoded, channel=caller.channel, thread=thread)
            self.jobs.spawn(self._open_form(surface, str(body.get("trigger_id") or ""), form))
            return
        press = body.get("trigger_id") or action.get("action_ts")
        if self.worker is not None and press:
            payload = {"action": decoded.encode(), "team": caller.workspace,
                       "user": caller.user, "channel": caller.channel, "thread": thread,
                       "bot": dataclasses.asdict(_bot(context))}  # fmt: skip
            # a lane of its own: a press does not wait behind the thread's turns (the core
            # orders what must be ordered: a Retry's or a Fix's turn takes the thread's line)
            await self.worker.accept(
                delivery=f"slack:press:{press}", lane=f"slack:press:{press}",
                kind=PRESS_KIND, payload=payload,
            )  # fmt: skip
            return
        self.jobs.spawn(self.presenter.act(surface, caller, decoded))

    async def _perform_press(self, job: Job, journal: Journal) -> None:
        """A button press written down by :meth:`_on_button`, acted on now. Performed again
        after a crash, the message the first attempt was writing says so first."""
        payload = job.payload
        action = Action.decode(payload["action"])
        if action is None:
            return
        caller = _member(payload["team"], payload["user"], payload["channel"])
        surface = self._surface(SlackBot(**payload["bot"]), caller, thread=payload["thread"])
        previous = await self._interrupted(journal)
        if previous is not None:
            await self.presenter.restarted(surface, previous, answer=False)
        journaled = Journaled(surface, journal.message, dataclasses.asdict)
        await self.presenter.act(journaled, caller, action)

    async def _open_form(self, surface: SlackSurface, trigger: str, form: dict[str, Any]) -> None:
        try:
            with refusals():
                await self.client.views_open(trigger_id=trigger, view=form)
        except Exception as err:
            await self.presenter.fail(surface, err)

    async def _on_run_modal(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """A submitted Run with input… form: the run, in the button's thread."""
        asked = run_modal_values(view)
        try:
            args = parse_args(asked.args)
        except UserError as err:  # the form stays open, the reason under the field
            await ack(response_action="errors", errors={"args": words.explain(err)})
            return
        await ack()
        if asked.action is None:
            log.info("ignored a Run with input form without its button's action")
            return
        caller = self._caller(context, body["user"]["id"], asked.channel)
        surface = self._surface(context, caller, thread=asked.thread)
        self.jobs.spawn(
            self.presenter.run(
                surface,
                caller,
                asked.action.session_id,
                number=asked.action.number,
                stdin=asked.stdin,
                args=args,
            )
        )

    async def _snippets(self, surface: SlackSurface, caller: Caller, text: str) -> None:
        """``/snippets [list|search TEXT|show ID [N]|diff ID [A] [B]|run ID [N] [--stdin TEXT]
        [-- ARG…]|files ID|delete ID|help]``, for the caller's eyes only."""
        verb, _, arg = text.strip().partition(" ")
        verb = verb.lower() or "list"
        if verb in ("list", "search"):
            await self.presenter.list(surface, caller, search=arg.strip() or None)
            return
        if verb not in ("show", "diff", "run", "files", "delete"):
            await self._say(surface, words.SNIPPETS_HELP)
            return
        first, options = (*arg.split(maxsplit=1), "", "")[:2]
        session_id = snippet_ref(first)
        if verb == "run" and session_id is not None:
            await self._run(surface, caller, session_id, options)
            return
        rest = options.split()
        numbers = [int(w) for w in rest if w.isdigit()]
        if session_id is None or len(numbers) != len(rest):
            await self.presenter.fail(surface, UserError(words.SNIPPET_NUMBER))
        elif verb == "show":
            number = numbers[0] if numbers else None
            await self.presenter.show_version(surface, caller, session_id, number)
        elif verb == "diff":
            old, new = (*numbers, None, None)[:2] if len(numbers) != 1 else (numbers[0], None)
            await self.presenter.compare(surface, caller, session_id, old, new, private=True)
        elif verb == "files":
            await self.presenter.files(surface, caller, session_id)
        else:
            await self.presenter.delete(surface, caller, session_id)

    async def _run(
        self, surface: SlackSurface, caller: Caller, session_id: int, options: str
    ) -> None:
        """``/snippets run ID [N] [--stdin TEXT] [-- ARG…]``: ``--stdin`` is the text itself."""
        try:
            asked = parse_run(to_plain(options), usage=_RUN_USAGE)
        except UserError as err:
            await self.presenter.fail(surface, err)
            return
        await self.presenter.run(
            surface,
            caller,
            session_id,
            number=asked.number,
            private=True,
            stdin=asked.stdin or "",
            args=asked.args,
        )

    @staticmethod
    async def _say(surface: SlackSurface, text: str) -> None:
        """A line of help for the person who asked (best effort)."""
        with contextlib.suppress(PlatformRefused):
            await surface.tell(Notice(text=text, summary=text))


def _member(team: str, user: str, channel: str) -> Caller:
    """A person of workspace ``team``, asking in ``channel``."""
    return Caller(platform=PLATFORM, workspace=team, user=user, channel=channel)


def _bot(context: AsyncBoltContext) -> SlackBot:
    """The bot as this request's authorization names it."""
    auth = context.authorize_result
    return SlackBot(user=context.bot_user_id, bot_id=context.bot_id, url=auth.url if auth else None)


async def _settles(work: Awaitable[Any], done: asyncio.Future[None] | None) -> None:
    """``work``, then ``done`` set (also when ``work`` failed or was cancelled)."""
    try:
        await work
    finally:
        if done is not None and not done.done():
            done.set_result(None)


async def _nothing() -> None:
    return None


def _name(file: dict[str, Any]) -> str:
    return str(file.get("name") or file.get("title") or file.get("id") or "file")


def _is_html(file: dict[str, Any], name: str) -> bool:
    """Whether a file is a web page itself (else an HTML answer is Slack's sign-in page)."""
    return file.get("filetype") == "html" or name.lower().endswith((".html", ".htm"))
