"""The Slack adapter, on slack-bolt's ``AsyncApp``: sessions live in threads.

- ``/code [language] [model:REF] PROMPT`` and ``@codethread PROMPT`` post a parent message in the
  channel (who asked, language, model, request); the session lives in its thread, keyed
  ``(slack, team, channel, parent ts)``. A bare ``/code`` opens a form (language and model
  selects, a prompt box). ``language:X`` may stand for the bare language word.
- Every person's reply in a session thread is feedback for the next version. The bot's own
  messages, other bots, edits, deletions and threads that are not sessions are ignored. An
  Events API delivery is handled once: a repeated ``event_id`` (a Slack retry, with
  ``X-Slack-Retry-Num``, or a Socket Mode redelivery) is dropped; a retry whose first delivery
  never reached this process is handled, since nothing answered it yet.
- Every handler acknowledges first (Slack allows 3 s) and hands the work to a background task;
  :meth:`SlackAdapter._guarded` is the one place that turns a failure into a message for the
  person who asked (ephemeral), never a traceback.
- One message per version: posted when the turn starts, edited at most once per
  ``edit_interval`` (1 s; the final edit waits out the interval too), ending as the version
  with its buttons (Run and, for Python and JavaScript, Test, when the sandbox works here;
  Delete session, owner only, confirmed). A snippet too long for a message goes to the thread
  as a file (``files_upload_v2``, Slack's file type for the language). A failed turn ends with
  the reason and a Retry button.
- Run and Test (anyone in the thread) post the result in the thread: the summary, the tests
  (long ones as a file with a preview), the outputs; a place in the sandbox's line is shown
  while waiting. A failed result has a Fix button: the next version, made from that failure,
  streams into the thread like a reply's. Test and Fix act on the latest version only.
- ``/snippets [list|show ID|run ID|delete ID]`` answers ephemerally, scoped to the caller's own
  sessions in this workspace (``run`` too); deleting a session also removes the bot's messages
  in its thread.
- Socket Mode when an app token is set (no HTTP route then), else HTTP mode on
  ``POST /slack/events`` with bolt's signature check. The Web API client retries Slack's 429s
  after ``Retry-After``.

This module is the Slack wiring (bolt, acknowledgements, deliveries, errors);
:mod:`bot.adapters.slack_sessions` does the work and :mod:`bot.adapters.slack_blocks` renders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.base import ChatAdapter
from bot.adapters.slack_blocks import (
    DELETE,
    FIX,
    MODAL,
    RETRY,
    RUN,
    TEST,
    Message,
    escape,
    modal_values,
    to_plain,
)
from bot.adapters.slack_sessions import PLATFORM, CodeRequest, SlackBot, SlackSessions, session_ref
from bot.core import SessionService
from bot.errors import ConfigError, UserError
from bot.limits import check_prompt
from bot.metrics import Metrics
from bot.runs import RunService
from bot.values import Caller

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import App

__all__ = ["SlackAdapter"]

log = logging.getLogger("codethread.slack")

_SLACK_PROBLEMS = {
    "not_in_channel": "I'm not a member of this channel: invite me with `/invite @codethread`, "
    "then try again.",
    "channel_not_found": "I can't post in this conversation. Use `/code` in a channel I'm a "
    "member of (invite me with `/invite @codethread`).",
    "is_archived": "This channel is archived, so I can't post in it.",
    "restricted_action": "This workspace does not let me post here.",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Private:
    """Where to tell one person something only they see."""

    channel: str
    user: str
    thread_ts: str | None = None
    respond: AsyncRespond | None = None  # a slash command's response_url


def _bot(context: AsyncBoltContext) -> SlackBot:
    auth = context.authorize_result
    return SlackBot(user=context.bot_user_id, bot_id=context.bot_id, url=auth.url if auth else None)


def _is_reply(event: dict[str, Any], bot_user: str | None) -> bool:
    """A person's message inside a thread (not the parent, not an edit, not a bot)."""
    return (
        event.get("subtype") in (None, "thread_broadcast", "file_share")
        and not event.get("bot_id")
        and not event.get("hidden")
        and bool(event.get("user"))
        and event.get("user") != bot_user
        and bool(event.get("thread_ts"))
        and event.get("thread_ts") != event.get("ts")
    )


class SlackAdapter(ChatAdapter):
    name = "slack"

    def __init__(
        self,
        service: SessionService,
        metrics: Metrics,
        *,
        runs: RunService,
        bot_token: str,
        signing_secret: str | None = None,
        app_token: str | None = None,
        api_url: str | None = None,
        edit_interval: float = 1.0,
    ) -> None:
        if not (app_token or signing_secret):
            raise ConfigError(
                "Slack needs SLACK_SIGNING_SECRET (HTTP mode on /slack/events) or "
                "SLACK_APP_TOKEN (Socket Mode)."
            )
        self.service = service
        self.metrics = metrics
        self.edit_interval = edit_interval
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url or AsyncWebClient.BASE_URL,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            ],
        )
        self.bolt = AsyncApp(
            name="codethread",
            client=self.client,
            signing_secret=signing_secret or "",
            process_before_response=True,  # handlers only ack and spawn; the work runs after
            logger=logging.getLogger("codethread.slack.bolt"),
        )
        self._app_token = app_token
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sessions = SlackSessions(service, runs, self.client, edit_interval=edit_interval)
        self._register()

    @classmethod
    def from_app(cls, app: App, *, edit_interval: float = 1.0) -> SlackAdapter:
        config = app.config
        if not config.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set.")
        return cls(
            app.service,
            app.metrics,
            runs=app.runs,
            bot_token=config.slack_bot_token,
            signing_secret=config.slack_signing_secret,
            app_token=config.slack_app_token,
            api_url=config.slack_api_url,
            edit_interval=edit_interval,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def socket_mode(self) -> bool:
        return bool(self._app_token)

    def routes(self) -> list[web.RouteDef]:
        return [] if self.socket_mode else [web.post("/slack/events", self._http)]

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        if self._app_token and self._socket is None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.bolt, self._app_token)
            self._connecting = asyncio.create_task(self._connect(self._socket))

    async def _connect(self, socket: AsyncSocketModeHandler) -> None:
        try:
            await socket.connect_async()  # type: ignore[no-untyped-call]  # bolt leaves it untyped
        except Exception as err:  # e.g. a revoked SLACK_APP_TOKEN; the rest of serve goes on
            log.error("could not connect to Slack in Socket Mode: %s", type(err).__name__)
            raise
        log.info("connected to Slack in Socket Mode")

    async def drain(self) -> None:
        """Wait until every background job (turns, replies, cleanups) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in [*self._tasks, *filter(None, [self._connecting])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connecting is not None:
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    async def _http(self, request: web.Request) -> web.Response:
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    # -- handlers: acknowledge, turn the event into values, hand the work on ------------------

    def _register(self) -> None:
        bolt = self.bolt
        bolt.command("/code")(self._on_code)
        bolt.command("/snippets")(self._on_snippets)
        bolt.event("app_mention")(self._on_mention)
        bolt.event("message")(self._on_message)
        bolt.view(MODAL)(self._on_modal)
        bolt.action(RUN)(self._on_button("run", self.sessions.run))
        bolt.action(TEST)(self._on_button("test", self.sessions.test))
        bolt.action(FIX)(self._on_button("fix", self.sessions.fix))
        bolt.action(DELETE)(self._on_delete)
        bolt.action(RETRY)(self._on_retry)
        bolt.error(self._on_bolt_error)

    async def _on_code(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        if (begun := self._begin_command("code", command, context, respond)) is None:
            return
        caller, private = begun
        text = to_plain(command.get("text") or "")
        self._spawn(self.sessions.code(caller, text, command.get("trigger_id", "")), private)

    async def _on_snippets(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        if (begun := self._begin_command("snippets", command, context, respond)) is None:
            return
        caller, private = begun
        job = self.sessions.snippets(caller, command.get("text") or "", _bot(context))
        self._spawn(self._answer(job, private), private)

    async def _on_mention(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        await ack()
        self._count("app_mention")
        if not self._first_delivery(body, request) or event.get("bot_id") or not event.get("user"):
            return
        caller = self._caller(context, event["user"], event["channel"])
        text = to_plain(event.get("text") or "", bot_user=context.bot_user_id)
        thread_ts = event.get("thread_ts")
        private = _Private(channel=caller.channel, user=caller.user, thread_ts=thread_ts)
        if thread_ts and thread_ts != event.get("ts"):
            job = self.sessions.reply(caller, event["ts"], thread_ts, text, mention=True)
            self._spawn(job, private)
        else:
            self._spawn(self.sessions.mention(caller, text), private)

    async def _on_message(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        await ack()
        self._count("message")
        if not _is_reply(event, context.bot_user_id) or not self._first_delivery(body, request):
            return
        caller = self._caller(context, event["user"], event["channel"])
        text = to_plain(event.get("text") or "", bot_user=context.bot_user_id)
        thread_ts = event["thread_ts"]
        private = _Private(channel=caller.channel, user=caller.user, thread_ts=thread_ts)
        self._spawn(
            self.sessions.reply(caller, event["ts"], thread_ts, text, mention=False), private
        )

    async def _on_modal(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        channel, language, model, prompt = modal_values(view)
        try:
            check_prompt(prompt, limit=self.service.settings.max_prompt_chars)
        except UserError as err:
            await ack(response_action="errors", errors={"prompt": str(err)})
            return
        await ack()
        self._count("modal")
        caller = self._caller(context, body["user"]["id"], channel)
        request = CodeRequest(language=language, model=model, prompt=prompt)
        self._spawn(
            self.sessions.open(caller, request), _Private(channel=channel, user=caller.user)
        )

    def _on_button(
        self, kind: str, work: Callable[[Caller, str], Coroutine[Any, Any, None]]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        """A listener for a button whose value names the session (and version) it acts on."""

        async def on_click(
            ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
        ) -> None:
            await ack()
            self._count(f"action_{kind}")
            caller, private = self._action_caller(context, body)
            self._spawn(work(caller, str(action.get("value", ""))), private)

        return on_click

    async def _on_delete(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        self._count("action_delete")
        caller, private = self._action_caller(context, body)
        value, bot = str(action.get("value", "")), _bot(context)

        async def delete() -> None:
            await self.sessions.delete(caller, session_ref(value), bot)

        self._spawn(delete(), private)

    async def _on_retry(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        self._count("action_retry")
        caller, private = self._action_caller(context, body)
        clicked = f"slack:retry:{caller.channel}:{body.get('message', {}).get('ts')}"
        if self.service.first_delivery(clicked):  # one retry per failure message
            self._spawn(self.sessions.retry(caller, str(action.get("value", ""))), private)

    async def _on_bolt_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack request failed in a handler: %r (type %s)", error, body.get("type"))

    # -- plumbing: deliveries, errors, metrics -----------------------------------------------

    def _caller(self, context: AsyncBoltContext, user: str, channel: str) -> Caller:
        return Caller(
            platform=PLATFORM, workspace=context.team_id or "", user=user, channel=channel
        )

    def _action_caller(
        self, context: AsyncBoltContext, body: dict[str, Any]
    ) -> tuple[Caller, _Private]:
        channel = (body.get("channel") or {}).get("id", "")
        caller = self._caller(context, body["user"]["id"], channel)
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts")
        return caller, _Private(channel=channel, user=caller.user, thread_ts=thread_ts)

    def _first_delivery(self, body: dict[str, Any], request: AsyncBoltRequest) -> bool:
        """False for an Events API delivery already handled (Slack retries, redeliveries)."""
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        if retry:
            self._count("retry")
        event_id = body.get("event_id")
        if event_id and not self.service.first_delivery(f"slack:event:{event_id}"):
            self._count("duplicate")
            log.info("dropped a repeated delivery of %s (retry %s)", event_id, retry or "-")
            return False
        return True

    def _begin_command(
        self,
        name: str,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> tuple[Caller, _Private] | None:
        """Count a slash command and say who asked where; None for one delivered again (Slack
        sends each once; a replaying proxy or a resent request carries the same one-time
        ``trigger_id``)."""
        self._count(f"command_{name}")
        trigger = command.get("trigger_id")
        if trigger and not self.service.first_delivery(f"slack:trigger:{trigger}"):
            self._count("duplicate")
            return None
        caller = self._caller(context, command["user_id"], command["channel_id"])
        return caller, _Private(channel=caller.channel, user=caller.user, respond=respond)

    def _count(self, kind: str) -> None:
        self.metrics.events.labels(platform=PLATFORM, kind=kind).inc()

    def _spawn(self, job: Coroutine[Any, Any, Any], private: _Private) -> None:
        task = asyncio.create_task(self._guarded(job, private))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: job.close())  # never started (cancelled): no warning

    async def _guarded(self, job: Coroutine[Any, Any, Any], private: _Private) -> None:
        """Run a job; any failure becomes a message for the person who asked."""
        try:
            await job
        except UserError as err:
            await self._tell(private, escape(str(err)))
        except SlackApiError as err:
            error = str(err.response.get("error") or "")
            log.warning("Slack refused a call: %s", error)
            problem = _SLACK_PROBLEMS.get(error, f"Slack refused my request (`{error}`).")
            await self._tell(private, problem)
        except Exception:
            log.exception("a Slack job failed")
            await self._tell(
                private, "Something went wrong on my side; it has been logged. Please try again."
            )

    async def _answer(self, job: Coroutine[Any, Any, Message], private: _Private) -> None:
        message = await job
        await self._tell(private, message.text, message.blocks)

    async def _tell(
        self, private: _Private, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        try:
            if private.respond is not None:
                await private.respond(
                    text=text, blocks=blocks, response_type="ephemeral", replace_original=False
                )
            else:
                await self.client.chat_postEphemeral(
                    channel=private.channel,
                    user=private.user,
                    text=text,
                    blocks=blocks,
                    thread_ts=private.thread_ts,
                )
        except Exception as err:  # nowhere left to report it: log, without the token
            log.warning("could not tell %s: %s", private.user, type(err).__name__)
