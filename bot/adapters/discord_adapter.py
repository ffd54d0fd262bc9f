"""The Discord adapter: ``/code`` opens a thread that is the session, replies adjust it.

- ``/code prompt language model`` is deferred at once (Discord's 3-second window), the request
  is posted as the interaction's original response, and a public thread is created from that
  message: the session is the thread, keyed ``(discord, guild id, parent channel id, thread
  id)``. Every later reply in the thread is feedback for the next version, in arrival order.
- Each turn shows up as one bot message, edited about once a second as the answer streams and
  finally replaced by the version: fenced code, or the code as ``snippet.<ext>`` with a preview
  when it does not fit Discord's 2,000 characters, with Run / Test / Delete session buttons.
  A failed run or test has a Fix button, whose next version streams in the thread like a
  reply's, in the same order.
  ``/snippets`` answers only the caller (ephemeral).
- Failures (refusals, engine errors, missing permissions, rate limits) become one clear
  message; the request is kept and the session stays usable.

The parts: this module (connection, thread replies, turns), :mod:`.discord_interactions`
(slash commands, autocomplete, buttons), :mod:`.discord_commands` (command shapes),
:mod:`.discord_views` (persistent buttons), :mod:`.discord_render` (messages, errors) and
:mod:`.discord_http` (``DISCORD_API_URL``).

Gateway intents: ``guilds``, ``guild_messages`` and the privileged ``message_content`` (enable
"Message Content Intent" for the bot in the Developer Portal, or thread replies arrive empty),
plus ``dm_messages`` when ``discord_allow_dms`` is on. A DM has no threads: there ``/code``
starts a session in the DM itself, and later messages in that DM adjust the most recently
updated one. Model output never pings anyone (no allowed mentions).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import ClassVar

import discord
from discord import app_commands
from discord.http import HTTPClient
from discord.webhook.async_ import async_context

from bot.adapters.base import ChatAdapter
from bot.adapters.discord_commands import build_commands
from bot.adapters.discord_http import ApiHTTPClient, ApiWebhooks
from bot.adapters.discord_interactions import Interactions
from bot.adapters.discord_render import (
    DISCORD_ERRORS,
    LIMIT,
    LiveMessage,
    caller_for,
    explain,
    log_error,
    long_text,
    version_message,
)
from bot.adapters.discord_views import BUTTONS, retry_view, version_view
from bot.adapters.render import loading_text, partial
from bot.app import App
from bot.core import SessionService
from bot.errors import ConfigError, UserError
from bot.metrics import Metrics
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
    Started,
    Waiting,
)
from storage import Session, SessionKey

__all__ = ["DiscordAdapter"]

log = logging.getLogger("codethread.discord")

Channel = discord.abc.Messageable
#: a wait for Discord's rate limit longer than this raises discord.RateLimited (shown to users)
MAX_RATE_LIMIT_WAIT = 30.0


class _Lanes:
    """Runs jobs one after another per key (a thread), different keys concurrently.

    This is what keeps replies in order: a reply is queued synchronously when its gateway event
    is dispatched, before any await, so arrival order is the order of the turns.
    """

    def __init__(self) -> None:
        self._queues: dict[int, deque[Callable[[], Awaitable[None]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: int, job: Callable[[], Awaitable[None]]) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque([job])
        task = asyncio.create_task(self._drain(key), name=f"codethread-discord-lane-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: int) -> None:
        queue = self._queues[key]
        try:
            while queue:
                try:
                    await queue[0]()
                except Exception:  # jobs report their own errors; this is a last resort
                    log.exception("a Discord job failed")
                finally:
                    queue.popleft()
        finally:
            del self._queues[key]

    async def join(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Client(discord.Client):
    def __init__(
        self, adapter: DiscordAdapter, *, intents: discord.Intents, http: HTTPClient | None
    ) -> None:
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),  # model output never pings anyone
            max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
        )
        if http is not None:
            self.http = http
            self._connection.http = http
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)
        self.buttons = Interactions(adapter, self)  # bot.adapters.discord_views hands clicks here
        for command in build_commands(self.buttons, allow_dms=adapter.allow_dms):
            self.tree.add_command(command)
        self.tree.error(self.buttons.on_command_error)

    async def setup_hook(self) -> None:
        """Register the persistent buttons and publish the slash commands."""
        self.add_dynamic_items(*BUTTONS)
        try:
            commands = await self.tree.sync()
            log.info("published %d Discord slash command(s)", len(commands))
        except DISCORD_ERRORS as err:  # the commands of the last sync still work
            log.warning("could not publish the slash commands: %s", err)

    async def on_message(self, message: discord.Message) -> None:
        self.adapter.on_message(message)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d server(s)", self.user, len(self.guilds))


class DiscordAdapter(ChatAdapter):
    name: ClassVar[str] = "discord"

    def __init__(
        self,
        *,
        service: SessionService,
        runs: RunService,
        metrics: Metrics,
        token: str,
        api_url: str | None = None,
        allow_dms: bool = False,
        http: HTTPClient | None = None,
        edit_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.runs = runs
        self.metrics = metrics
        self.api_url = api_url.rstrip("/") if api_url else None
        self.allow_dms = allow_dms
        self.edit_interval = edit_interval  # seconds between edits of a streaming message
        self.__token = token
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        intents.dm_messages = allow_dms
        if http is None and self.api_url:
            http = ApiHTTPClient(api_url=self.api_url, max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT)
        self.client = _Client(self, intents=intents, http=http)
        self._lanes = _Lanes()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_app(
        cls, app: App, *, http: HTTPClient | None = None, edit_interval: float = 1.0
    ) -> DiscordAdapter:
        """The adapter for ``app``'s configuration; tests pass a recording ``http`` client."""
        token = app.config.discord_bot_token
        if not token:
            raise ConfigError("DISCORD_BOT_TOKEN is not set.")
        return cls(
            service=app.service,
            runs=app.runs,
            metrics=app.metrics,
            token=token,
            api_url=app.config.discord_api_url,
            allow_dms=app.config.discord_allow_dms,
            http=http,
            edit_interval=edit_interval,
        )

    def __repr__(self) -> str:  # never shows the token
        return f"DiscordAdapter(api_url={self.api_url!r}, allow_dms={self.allow_dms})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in and connect in a background task of the running loop; returns at once."""
        context = contextvars.copy_context()
        if self.api_url:  # interaction callbacks too, in the client's tasks only
            context.run(async_context.set, ApiWebhooks(self.api_url, async_context.get()))
        self._task = asyncio.create_task(self._run(), name="codethread-discord", context=context)

    async def _run(self) -> None:
        try:
            await self.client.start(self.__token)  # login, setup_hook, gateway (reconnecting)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_BOT_TOKEN; the Discord adapter is off")
        except discord.PrivilegedIntentsRequired:
            log.error(
                "Discord refused the Message Content intent: enable it for the bot in the "
                "Developer Portal (Bot → Privileged Gateway Intents); the Discord adapter is off"
            )
        except Exception:
            log.exception("the Discord connection stopped")

    async def join(self) -> None:
        """Wait until every queued turn has been answered (for tests and benchmarks)."""
        await self._lanes.join()

    async def aclose(self) -> None:
        await self._lanes.aclose()
        if not self.client.is_closed():
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def count(self, kind: str) -> None:
        self.metrics.events.labels(platform="discord", kind=kind).inc()

    # -- thread replies ----------------------------------------------------------------------

    def on_message(self, message: discord.Message) -> None:
        """Queue a reply in a session thread (or an allowed DM); everything else is ignored."""
        channel = message.channel
        me = self.client.user
        if message.author.bot or message.webhook_id is not None or me is None:
            return  # ourselves, other bots, webhooks
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if not message.content.strip():
            return  # stickers, images: nothing to work with
        if message.guild is None:
            if not (self.allow_dms and isinstance(channel, discord.DMChannel)):
                return
        elif isinstance(channel, discord.Thread):
            if channel.owner_id != me.id:
                return  # only threads the bot opened can be sessions
        elif not isinstance(channel, discord.PartialMessageable):
            return  # a plain channel (a thread missing from the cache is looked up later)
        if not self.service.first_delivery(f"discord:message:{message.id}"):
            return
        self.count("reply")
        self._lanes.submit(channel.id, functools.partial(self._reply, message))

    async def _reply(self, message: discord.Message) -> None:
        channel: Channel = message.channel
        try:
            found = await self._session_for(message)
            if found is None:
                return
            session, caller, channel = found
            await self._converse(channel, session.id, caller, message.content, reply_to=message)
        except Exception as err:
            await self._report_in(channel, err, reply_to=message)

    async def _session_for(
        self, message: discord.Message
    ) -> tuple[Session, Caller, Channel] | None:
        channel = message.channel
        caller = caller_for(message.author, message.guild.id if message.guild else None, channel)
        if message.guild is None:
            mine = await self.service.list_sessions(caller)  # most recently updated first
            session = next((s for s in mine if s.key.channel == str(channel.id)), None)
            if session is None:
                raise UserError("Start a snippet with /code; later messages here adjust it.")
            return session, caller, channel
        if isinstance(channel, discord.PartialMessageable):  # a thread missing from the cache
            fetched = await self.client.fetch_channel(channel.id)
            me = self.client.user
            if not isinstance(fetched, discord.Thread) or me is None or fetched.owner_id != me.id:
                return None
            channel = fetched
            caller = caller_for(message.author, message.guild.id, channel)
        if not isinstance(channel, discord.Thread):
            return None
        key = SessionKey(
            platform="discord",
            workspace=caller.workspace,
            channel=str(channel.parent_id),
            thread=str(channel.id),
        )
        session = await self.service.find(key)
        return None if session is None else (session, caller, channel)

    # -- turns -------------------------------------------------------------------------------

    def queue_turn(
        self,
        lane: int,
        channel: Channel,
        session: int | Awaitable[int | None],
        caller: Caller,
        text: str,
    ) -> None:
        """Run a turn in ``channel`` after the jobs already queued in its lane (a thread).

        ``session`` may be a future that a new session's id (or None) is set on: /code queues
        its first turn as soon as the thread exists, so that no reply can overtake it.
        """
        job = functools.partial(self._turn, channel, session, caller, text)
        self._lanes.submit(lane, job)

    async def _turn(
        self, channel: Channel, session: int | Awaitable[int | None], caller: Caller, text: str
    ) -> None:
        session_id = session if isinstance(session, int) else await session
        if session_id is None:
            return  # the session was not started; /code said why
        try:
            await self._converse(channel, session_id, caller, text, reply_to=None)
        except Exception as err:
            await self._report_in(channel, err, reply_to=None)

    def queue_fix(
        self,
        lane: int,
        channel: Channel,
        session_id: int,
        caller: Caller,
        *,
        reply_to: discord.Message | None,
        report: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        """Make the next version from the latest failed run in ``channel``, in lane order.

        Shown like a reply's turn; a refusal (nothing to fix) or failure goes to ``report``.
        """
        job = functools.partial(self._fix, channel, session_id, caller, reply_to, report)
        self._lanes.submit(lane, job)

    async def _fix(
        self,
        channel: Channel,
        session_id: int,
        caller: Caller,
        reply_to: discord.Message | None,
        report: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        try:
            await self._show(channel, self.runs.fix(session_id, caller), reply_to=reply_to)
        except Exception as err:
            await report(err)

    async def _converse(
        self,
        channel: Channel,
        session_id: int,
        caller: Caller,
        text: str,
        *,
        reply_to: discord.Message | None,
    ) -> None:
        """Run one turn and show it as one message, edited while it streams."""
        await self._show(channel, self.service.turn(session_id, caller, text), reply_to=reply_to)

    async def _show(
        self,
        channel: Channel,
        stream: AsyncGenerator[Reply],
        *,
        reply_to: discord.Message | None,
    ) -> None:
        """Show a turn's events as one message, edited while it streams."""
        live = LiveMessage(channel, reply_to=reply_to, interval=self.edit_interval)
        try:
            await self._show_events(live, stream)
        except Exception as err:
            if live.message is not None:  # don't leave "Writing…" behind
                with contextlib.suppress(*DISCORD_ERRORS):
                    await live.finish(f"⚠️ {explain(err)}")
            raise

    async def _show_events(self, live: LiveMessage, stream: AsyncGenerator[Reply]) -> None:
        header = "✏️ Writing…"
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                match event:
                    case Waiting(position=position):
                        await live.show(f"⏳ Waiting for {position} earlier request(s)…")
                    case Loading():
                        await live.show(f"⏳ {loading_text(event)}")
                    case Started(number=number, model=model):
                        header = f"✏️ Writing version {number} with {model}…"
                        await live.show(header)
                    case Progress(text=answer) if live.due():
                        await live.show(
                            f"{header}\n{partial(answer, limit=LIMIT - len(header) - 1)}"
                        )
                    case Done(session=session, version=version, complete=complete):
                        language = self.service.language(session.language)
                        content, attachment = version_message(
                            session, version, language, complete=complete
                        )
                        view = version_view(
                            session.id,
                            version.number,
                            can_run=self.runs.can_run,
                            can_test=session.language in TESTABLE,
                        )
                        await live.finish(content, attachment=attachment, view=view)
                    case NonCode(text=answer):
                        prefix = "💬 No code in this answer, so no new version:\n"
                        content, attachment = long_text(prefix, answer, "answer.md")
                        await live.finish(content, attachment=attachment)
                    case Failed(session=session, message=reason):
                        await live.finish(
                            f"⚠️ {reason}\nYour request is kept: press **Retry**, or reply with "
                            "more detail.",
                            view=retry_view(session.id),
                        )

    async def _report_in(
        self, channel: Channel, error: BaseException, *, reply_to: discord.Message | None
    ) -> None:
        """Report a failed turn in its thread (interactions report through Interactions)."""
        log_error(error)
        reference = reply_to.to_reference(fail_if_not_exists=False) if reply_to else None
        try:
            if reference is None:
                await channel.send(f"⚠️ {explain(error)}")
            else:
                await channel.send(f"⚠️ {explain(error)}", reference=reference)
        except DISCORD_ERRORS as err:
            log.warning("could not report an error in a Discord channel: %s", err)
