"""The Discord adapter: ``/code`` opens a thread that is the session, replies adjust it.

- ``/code prompt language model`` is deferred at once (Discord's 3-second window), the request
  is posted as the interaction's response, and a public thread is created from that message:
  the session is the thread, keyed ``(discord, guild id, parent channel id, thread id)``.
  Every later message in the thread is feedback for the next version, and its attachments
  become the session's input files (downloaded unless over :data:`bot.files.MAX_FILE_BYTES`,
  which the core then refuses by name). The core keeps them in arrival order: each takes its
  place in the thread's line while its gateway event is being handled, before anything is
  awaited, or, when it must wait for a download or a lookup first, right after the messages
  before it (:meth:`DiscordAdapter.on_message`).
- The presenter shows each turn as one bot message, edited at ``edit_interval`` as the answer
  streams, with the place in line while it waits, and finally the version with its buttons
  (:mod:`.buttons`). ``/snippets`` answers only the caller.
- Durable turns: with a :class:`~bot.jobs.Worker` (``serve``), a person's message in a
  server thread (or an allowed DM, in its DM's lane) is a job row first (unique by the
  message's id, so a second replica on the same shard, or a repeated dispatch, adds nothing),
  and the worker performs it, one turn of a thread at a time across replicas
  (:meth:`DiscordAdapter._perform`); a process killed in the middle of an answer is taken
  over, and the message it was writing says it was interrupted.
  Button presses and ``/code`` with its prompt are jobs too, written down before they are
  acknowledged and answerable from any replica through the interaction's token
  (:mod:`.durable`).
- Shutdown: :meth:`DiscordAdapter.drain` waits for the answers in flight (every piece of work
  started after an acknowledgement is a job of :class:`~bot.adapters.base.Jobs`);
  :meth:`DiscordAdapter.aclose` cancels what is left, and the presenter marks an interrupted
  answer as such rather than leaving "writing …".

The parts: this module (connection, thread messages, lifecycle, :func:`sync_commands`),
:mod:`.interactions` (slash commands, autocomplete, buttons, forms), :mod:`.commands`
(command shapes), :mod:`.durable` (presses and ``/code`` as jobs), :mod:`.buttons`,
:mod:`.forms` (Run with input…), :mod:`.surface` (where views go, and delivery that is not
lost), :mod:`.render` (how views look: Components V2) and
:mod:`.http` (``DISCORD_API_URL``).

Gateway intents: ``guilds``, ``guild_messages`` and the privileged ``message_content`` (enable
"Message Content Intent" for the bot in the Developer Portal), plus ``dm_messages`` when
``allow_dms`` is on. The adapter assumes the intent is granted (start-up fails without it):
without it Discord sends a server message's ``content`` *and* ``attachments`` empty, except
in DMs and messages that mention the bot, so thread replies and their files would be lost.

A DM has no threads: there ``/code`` starts a session in the DM itself, and later messages in
that DM adjust the most recently updated one. Model output never pings anyone (no allowed
mentions).

Health (``/readyz``): ``connected`` once the gateway is ready (every shard this process owns,
when sharded), ``starting`` while it connects or reconnects (discord.py reconnects by itself),
and ``failed`` with the reason and its fix when the connection stopped for good: a refused
token, the Message Content intent not enabled (close 4014), another close the gateway means
for good (4004, 4010-4013), or Discord out of reach at start (the login is tried
:data:`LOGIN_RETRIES` times more first). A failed adapter stays off, without retrying, and the
rest of ``serve`` goes on. Every 429 Discord answers (REST calls, interaction callbacks),
including those discord.py waits out, counts in ``codethread_platform_throttled_total``.

Sharding (``shard_count``, ``shard_ids``): with a shard count the client is an
``AutoShardedClient`` holding one gateway connection per shard it owns (``shard_ids``, all of
them when empty); each shard belongs to one process, and the processes share the database.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import aiohttp
import discord
from discord import app_commands
from discord.http import HTTPClient
from discord.webhook.async_ import async_context

from bot.adapters.base import AdapterHealth, ChatAdapter, Jobs
from bot.adapters.discord.buttons import ActionButton
from bot.adapters.discord.commands import build_commands
from bot.adapters.discord.durable import CODE_KIND, PRESS_KIND, DurableInteractions
from bot.adapters.discord.forms import submitted
from bot.adapters.discord.http import ApiHTTPClient, ApiWebhooks
from bot.adapters.discord.interactions import Interactions
from bot.adapters.discord.surface import (
    DM_WORKSPACE,
    ResponseSurface,
    ThreadSurface,
    caller_for,
    refusals,
    thread_key,
)
from bot.core import SessionService, TurnStream
from bot.errors import ConfigError, NotASession
from bot.files import MAX_FILE_BYTES
from bot.jobs import Journal, Worker
from bot.metrics import Metrics
from bot.present import PlatformRefused, Presenter
from bot.present.journal import Journaled
from bot.values import Caller, Upload
from storage import Job, SessionKey

__all__ = ["DiscordAdapter", "sync_commands"]

log = logging.getLogger("codethread.discord")

JOB_KIND = "discord.thread"  # a person's message in a server thread, as a durable job
DM_KIND = "discord.dm"  # a person's direct message to the bot (allow_dms), as a durable job
Interaction = discord.Interaction[discord.Client]
#: a wait for Discord's rate limit longer than this raises discord.RateLimited (shown to users)
MAX_RATE_LIMIT_WAIT = 30.0
_KNOWN_THREADS = 1000  # threads missing from discord.py's cache whose lookup is remembered
#: seconds before each new login when Discord cannot be reached at start (then: failed)
LOGIN_RETRIES = (2.0, 4.0, 8.0, 16.0)
BAD_TOKEN = (
    "the bot token was refused: set DISCORD_BOT_TOKEN to the token of the bot's page "
    "(Developer Portal → your application → Bot → Reset Token)"
)
NO_MESSAGE_CONTENT = (
    "the Message Content intent is not enabled: enable it on the bot's page in the Developer "
    "Portal (Bot → Privileged Gateway Intents → Message Content Intent), then restart"
)
#: the gateway's close codes that mean for good (discord.py does not reconnect), and the fix
FATAL_CLOSES = {
    4004: BAD_TOKEN,
    4010: "the gateway refused a shard number: DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT",
    4011: "Discord requires sharding for this bot (it is in too many servers for one "
    "connection): set DISCORD_SHARD_COUNT (see the README's Discord section)",
    4012: "the gateway refused discord.py's API version: upgrade codethread",
    4013: "the gateway refused the intents asked for: upgrade codethread",
    4014: NO_MESSAGE_CONTENT,
}
#: what a login that could not reach Discord raises (tried again, LOGIN_RETRIES times)
_UNREACHABLE = (OSError, aiohttp.ClientError, asyncio.TimeoutError, discord.DiscordServerError)


def _use_http(
    client: discord.Client, http: HTTPClient | None, trace: aiohttp.TraceConfig | None = None
) -> None:
    """Send the client's REST calls through ``http`` (a proxy's, or a fake's in tests), traced
    by ``trace`` unless it has a trace of its own."""
    if http is not None:
        if http.http_trace is None:
            http.http_trace = trace  # read when its session is made, at login
        client.http = http
        client._connection.http = http


def _throttle_counter(metrics: Metrics) -> aiohttp.TraceConfig:
    """Counts every 429 Discord answers on the client's HTTP session: REST calls and the
    interaction callbacks (discord.py sends those through the same session), including the
    ones discord.py waits out and sends again."""
    trace = aiohttp.TraceConfig()

    async def answered(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            metrics.throttled.labels(platform="discord").inc()

    trace.on_request_end.append(answered)
    return trace


def _shards(count: int | None, ids: Sequence[int]) -> tuple[int, ...]:
    """The shards this process connects (``(0,)`` without sharding); ConfigError for settings
    Discord would refuse."""
    if count is None:
        if ids:
            raise ConfigError(
                "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, the bot's number of shards in all."
            )
        return (0,)
    if count < 1:
        raise ConfigError(f"DISCORD_SHARD_COUNT must be 1 or more, not {count}.")
    if outside := sorted({i for i in ids if not 0 <= i < count}):
        raise ConfigError(
            f"DISCORD_SHARD_IDS {','.join(map(str, outside))} is not a shard of "
            f"DISCORD_SHARD_COUNT={count}: shards are numbered 0 to {count - 1}."
        )
    return tuple(dict.fromkeys(ids)) or tuple(range(count))


def _why(error: Exception, api_url: str | None) -> str:
    """Why the connection stopped for good, and what fixes it."""
    if isinstance(error, discord.LoginFailure):
        return BAD_TOKEN
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return NO_MESSAGE_CONTENT
    if isinstance(error, discord.ConnectionClosed):
        said = f", {error.reason}" if error.reason else ""
        return FATAL_CLOSES.get(
            error.code, f"the gateway closed the connection for good (code {error.code}{said})"
        )
    if isinstance(error, _UNREACHABLE):
        where = "DISCORD_API_URL" if api_url else "the network"
        return (
            f"Discord could not be reached at start ({type(error).__name__}: {error}): "
            f"check {where}, then restart"
        )
    if isinstance(error, discord.HTTPException):
        return f"Discord refused the login ({error.status} {error.text}".strip() + ")"
    return f"the connection stopped ({type(error).__name__}: {error})"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Place:
    """Where a message's turn goes: who sent it, the session's key, whether a message outside
    a session ends silently (``quiet``), and whether the session is known to exist."""

    caller: Caller
    key: SessionKey
    quiet: bool
    known: bool


class _Client(discord.Client):
    def __init__(
        self,
        adapter: DiscordAdapter,
        *,
        intents: discord.Intents,
        http: HTTPClient | None,
        trace: aiohttp.TraceConfig,
        **shards: Any,
    ) -> None:
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),  # model output never pings anyone
            max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
            http_trace=trace,
            **shards,
        )
        _use_http(self, http, trace)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)
        self.buttons = Interactions(adapter)  # bot.adapters.discord.buttons hands clicks here
        for command in build_commands(self.buttons, allow_dms=adapter.allow_dms):
            self.tree.add_command(command)
        self.tree.error(self.buttons.on_command_error)

    async def setup_hook(self) -> None:
        """Register the persistent buttons. The slash commands are published by
        ``codethread discord sync`` (:func:`sync_commands`), not at every start."""
        self.add_dynamic_items(ActionButton)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_interaction(self, interaction: Interaction) -> None:
        """A submitted Run with input… form (which discord.py would route only to a modal
        object still in memory: see :mod:`.forms`)."""
        form = submitted(interaction)
        if form is not None:
            await self.buttons.form_submitted(interaction, form)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d server(s)", self.user, len(self.guilds))
        self.adapter.gateway(0, up=True)

    async def on_resumed(self) -> None:
        self.adapter.gateway(0, up=True)

    async def on_disconnect(self) -> None:
        self.adapter.gateway(0, up=False)


class _ShardedClient(_Client, discord.AutoShardedClient):
    """One gateway connection per shard the process owns; health follows each shard (the
    plain ``ready``, ``resumed`` and ``disconnect`` events are for any one of them)."""

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d server(s)", self.user, len(self.guilds))

    async def on_resumed(self) -> None:
        pass

    async def on_disconnect(self) -> None:
        pass

    async def on_shard_ready(self, shard_id: int) -> None:
        self.adapter.gateway(shard_id, up=True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.adapter.gateway(shard_id, up=True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.adapter.gateway(shard_id, up=False)

    async def close(self) -> None:
        """discord.py's close ends with a queue that only a login makes; before one, only the
        HTTP client is there to close."""
        if hasattr(self, "_AutoShardedClient__queue"):
            await super().close()
        elif self._closing_task is None:
            self._closing_task = asyncio.create_task(self.http.close())
            await self._closing_task


class DiscordAdapter(ChatAdapter):
    name: ClassVar[str] = "discord"

    def __init__(
        self,
        *,
        sessions: SessionService,
        presenter: Presenter,
        metrics: Metrics,
        token: str,
        api_url: str | None = None,
        allow_dms: bool = False,
        http: HTTPClient | None = None,
        edit_interval: float = 1.0,
        shard_count: int | None = None,
        shard_ids: Sequence[int] = (),
        worker: Worker | None = None,
    ) -> None:
        self.sessions = sessions
        self.presenter = presenter
        self.metrics = metrics
        self.api_url = api_url.rstrip("/") if api_url else None
        self.allow_dms = allow_dms
        self.edit_interval = edit_interval  # seconds between edits of a streaming message
        self.__token = token
        self.jobs = Jobs("discord")
        self.worker = worker  # thread messages, presses, /code are durable jobs with one
        self._working: Worker | None = None  # the worker performing this adapter's jobs
        self.durable = DurableInteractions(self)
        self.health = AdapterHealth()
        #: the shards this process connects ((0,) without sharding), and those not ready now
        self.shards = _shards(shard_count, shard_ids)
        self._down = set(self.shards)
        self.login_retries: Sequence[float] = LOGIN_RETRIES
        self._threads: dict[int, asyncio.Task[discord.Thread | None]] = {}
        #: per channel, the last message still on its way into the line (see on_message)
        self._joining: dict[int, asyncio.Future[None]] = {}
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        intents.dm_messages = allow_dms
        trace = _throttle_counter(metrics)
        if http is None and self.api_url:
            http = ApiHTTPClient(
                api_url=self.api_url, max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT, http_trace=trace
            )
        self.client: _Client
        if shard_count is None:
            self.client = _Client(self, intents=intents, http=http, trace=trace)
        else:
            self.client = _ShardedClient(
                self,
                intents=intents,
                http=http,
                trace=trace,
                shard_count=shard_count,
                shard_ids=list(self.shards),
            )
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never shows the token
        shards = f", shards={list(self.shards)}" if isinstance(self.client, _ShardedClient) else ""
        return f"DiscordAdapter(api_url={self.api_url!r}, allow_dms={self.allow_dms}{shards})"

    def in_channel(
        self,
        channel: discord.abc.Messageable,
        *,
        reply_to: discord.Message | discord.PartialMessage | None = None,
        interaction: Interaction | None = None,
    ) -> ThreadSurface:
        return ThreadSurface(self.client, self.edit_interval, channel, reply_to, interaction)

    def response(self, interaction: Interaction) -> ResponseSurface:
        return ResponseSurface(self.client, self.edit_interval, interaction)

    def count(self, kind: str) -> None:
        self.metrics.events.labels(platform="discord", kind=kind).inc()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in and connect in a background task of the running loop; returns at once."""
        self.work()
        context = contextvars.copy_context()
        if self.api_url:  # interaction callbacks too, in the client's tasks only
            context.run(async_context.set, ApiWebhooks(self.api_url, async_context.get()))
        self._task = asyncio.create_task(self._run(), name="codethread-discord", context=context)

    def work(self) -> None:
        """Have the worker, when there is one, perform this adapter's jobs (from now on; a
        worker put in place of another takes them over)."""
        worker = self.worker
        if worker is not None and self._working is not worker:
            self._working = worker
            worker.handle(JOB_KIND, self._perform)
            worker.handle(DM_KIND, self._perform)
            worker.handle(PRESS_KIND, self.durable.perform_press)
            worker.handle(CODE_KIND, self.durable.perform_code)
            worker.start()

    async def _run(self) -> None:
        """Log in, then hold the gateway (discord.py reconnects by itself) until closed; a
        connection that stopped for good leaves the adapter ``failed``, and off."""
        try:
            await self._login()  # setup_hook too
            await self.client.connect()
        except Exception as err:  # whatever stopped it, the rest of serve goes on
            self.health = AdapterHealth("failed", _why(err, self.api_url))
            log.error("the Discord adapter is off: %s", self.health.reason)
            if not self.client.is_closed():
                await self.client.close()  # discord.py leaves it open after a 4014

    async def _login(self) -> None:
        """``client.login``, tried again after :attr:`login_retries` when Discord cannot be
        reached (discord.py does not retry a login)."""
        waits = iter(self.login_retries)
        while True:
            try:
                await self.client.login(self.__token)
                return
            except _UNREACHABLE as err:
                wait = next(waits, None)
                if wait is None:
                    raise
                log.warning(
                    "could not reach Discord (%s: %s); trying again in %.0f s",
                    type(err).__name__,
                    err,
                    wait,
                )
                http = self.client.http
                await http.close()  # its session and connector: the next login makes new ones
                http.connector = discord.utils.MISSING
                await asyncio.sleep(wait)

    def gateway(self, shard: int, *, up: bool) -> None:
        """A shard's connection is ready (or resumed), or lost (discord.py reconnects it)."""
        if self.health.state == "failed":
            return
        if up:
            self._down.discard(shard)
        else:
            self._down.add(shard)
        if not self._down:
            self.health = AdapterHealth("connected")
        elif len(self.shards) > 1:
            waiting = ", ".join(map(str, sorted(self._down)))
            self.health = AdapterHealth("starting", f"connecting shard(s) {waiting}")
        else:
            self.health = AdapterHealth("starting", "connecting to the gateway")

    async def drain(self) -> None:
        """Wait until every answer in flight has been shown (the worker's jobs first)."""
        if self.worker is not None and self._working is self.worker:
            await self.worker.idle()
        await self.jobs.drain()

    async def aclose(self) -> None:
        await self.jobs.cancel()
        if not self.client.is_closed():
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- messages in threads -----------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A message in a session thread (or an allowed DM) becomes a turn; the rest is ignored.

        With a worker, a message in a server thread is a durable job instead
        (:meth:`_accept`): written down now, its turn performed by :meth:`_perform`.

        Its attachments go with it (:meth:`_uploads`): the core stores them with the session
        before the turn (a message of files only just stores them; a lone ``message.txt``,
        Discord's long paste, is a turn of its text). In a thread discord.py knows, a message
        without files takes its place in line right here. One that must wait first (for its
        files to download, for a thread missing from the cache to be looked up, for a DM's
        session to be found) joins the line once that is done, but never before an earlier
        message of the same channel (:meth:`_later`), so the thread's line keeps the order in
        which its messages arrived.
        """
        channel = message.channel
        me = self.client.user
        if message.author.bot or message.webhook_id is not None or me is None:
            return  # ourselves, other bots, webhooks
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if not message.content.strip() and not message.attachments:
            return  # stickers, embeds: nothing to work with
        if message.guild is None:
            if not (self.allow_dms and isinstance(channel, discord.DMChannel)):
                return
        elif isinstance(channel, discord.Thread):
            if channel.owner_id != me.id:
                return  # only threads the bot opened can be sessions
        elif not isinstance(channel, discord.PartialMessageable):
            return  # a plain channel
        if self.worker is not None:
            await self._accept(self.worker, message, message.guild.id if message.guild else None)
            return
        if not self.sessions.first_delivery(f"discord:message:{message.id}"):
            return
        self.count("reply")
        ready = not message.attachments and channel.id not in self._joining
        if isinstance(channel, discord.Thread) and ready:
            caller = caller_for(message.author, channel.guild.id, channel)
            key = thread_key(caller.workspace, channel)
            self.jobs.spawn(self._turn(message, caller, key, message.content))
            return
        earlier = self._joining.get(channel.id)
        joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joining[channel.id] = joined
        self.jobs.spawn(self._later(message, earlier, joined))

    async def _accept(self, worker: Worker, message: discord.Message, guild: int | None) -> None:
        """Write a server thread's message (or, ``guild`` None, a direct message) down as a
        job (nothing comes of a message that was accepted before, here or by another replica
        on the same shard)."""
        payload = {
            "guild": guild,
            "channel": message.channel.id,
            "message": message.id,
            "author": message.author.id,
            "content": message.content,
            "attachments": [_attachment(a) for a in message.attachments],
        }
        accepted = await worker.accept(
            delivery=f"discord:message:{message.id}",
            lane=f"discord:{guild or DM_WORKSPACE}:{message.channel.id}",
            kind=JOB_KIND if guild is not None else DM_KIND,
            payload=payload,
        )
        if accepted:
            self.count("reply")

    async def _perform(self, job: Job, journal: Journal) -> None:
        """A thread message written down by :meth:`_accept`: its turn, now. Performed again
        after a crash, the message the first attempt was writing says so (or shows the version
        that attempt had stored, which is then not asked for again).

        The worker may start the next job of the thread while this one still looks its
        thread up or downloads its files; like :meth:`_later`, this one's turn joins the line
        after the job started before it, and the next one's after this one's.
        """
        channel_id = int(job.payload["channel"])
        earlier = self._joining.get(channel_id)  # taken before anything is awaited
        joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joining[channel_id] = joined
        show: Coroutine[Any, Any, object] | None = None
        try:
            turn = await self._prepare(job, journal)
            if earlier is not None:
                await asyncio.wait([earlier])
            if turn is not None:
                show = turn()  # its place in line, taken now
        finally:
            joined.set_result(None)
            if self._joining.get(channel_id) is joined:
                del self._joining[channel_id]
        if show is not None:
            await show

    async def _prepare(
        self, job: Job, journal: Journal
    ) -> Callable[[], Coroutine[Any, Any, object]] | None:
        """What starts the turn of a job's message, its files in hand (None: no turn)."""
        payload = job.payload
        if payload["guild"] is None:
            return await self._prepare_dm(job, journal)
        thread = await self.owned_thread(int(payload["channel"]))
        if thread is None:
            return None  # not a thread the bot opened: not a session
        caller = caller_for(_user(payload["author"]), payload["guild"], thread)
        key = thread_key(caller.workspace, thread)
        if payload["attachments"] and await self.sessions.find(key) is None:
            return None  # not a session: its files are not worth reading
        return await self._prepared(job, journal, thread, caller, key, quiet=True, files=True)

    async def _prepare_dm(
        self, job: Job, journal: Journal
    ) -> Callable[[], Coroutine[Any, Any, object]] | None:
        """A direct message's turn: the session is the most recently updated one started in
        that DM (as :meth:`_where` finds it); without one, the turn says how to start one."""
        payload = job.payload
        channel_id = int(payload["channel"])
        cached = self.client.get_channel(channel_id)
        # a DM needs no lookup to be written to: its id is enough (after a restart it is
        # not in the cache until the person writes again)
        channel = (
            cached
            if isinstance(cached, discord.DMChannel)
            else self.client.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        )
        caller = caller_for(_user(payload["author"]), None, channel)
        mine = await self.sessions.list_sessions(caller)  # most recently updated first
        here = str(channel.id)
        found = next((s.key for s in mine if s.key.channel == here), None)
        key = found or SessionKey(
            platform="discord", workspace=caller.workspace, channel=here, thread=here
        )
        # without a session, its files are not worth reading
        return await self._prepared(
            job, journal, channel, caller, key, quiet=False, files=found is not None
        )

    async def _prepared(
        self,
        job: Job,
        journal: Journal,
        channel: discord.Thread | discord.DMChannel | discord.PartialMessageable,
        caller: Caller,
        key: SessionKey,
        *,
        quiet: bool,
        files: bool,
    ) -> Callable[[], Coroutine[Any, Any, object]] | None:
        """A job's turn in ``channel``, resumed in the message a dead attempt was writing
        (or shown there as stored), its files (when ``files``) downloaded from their
        recorded URLs."""
        payload = job.payload
        text = str(payload["content"])
        surface = self.in_channel(channel, reply_to=channel.get_partial_message(payload["message"]))
        previous = journal.previous
        if journal.resumed and isinstance(previous, dict):
            handle = cast(discord.Message, channel.get_partial_message(int(previous["id"])))
            if await self.presenter.resume(surface, handle, key, text, job.created_at):
                return None
        uploads: Sequence[Upload] | Exception = ()
        if files and payload["attachments"]:
            state = self.client._connection
            attachments = [
                discord.Attachment(data=cast(Any, a), state=state) for a in payload["attachments"]
            ]
            uploads = await self._uploads(attachments)
        journaled = Journaled(surface, journal.message, _handle)
        return lambda: self._turn_in(
            journaled,  # type: ignore[arg-type]  # a journaled surface is a ThreadSurface's proxy
            caller, key, text, uploads=uploads, quiet=quiet,
        )  # fmt: skip

    async def owned_thread(self, channel_id: int) -> discord.Thread | None:
        """The thread ``channel_id`` if the bot opened it: from the cache, else looked up."""
        cached = self.client.get_channel(channel_id)
        if isinstance(cached, discord.Thread):
            me = self.client.user
            return cached if me is not None and cached.owner_id == me.id else None
        return await self._fetch_thread(channel_id)

    def _turn(
        self,
        message: discord.Message,
        caller: Caller,
        key: SessionKey,
        text: str,
        *,
        uploads: Sequence[Upload] | Exception = (),
        quiet: bool = True,
    ) -> Coroutine[Any, Any, object]:
        """The turn of ``message`` (``text`` and ``uploads``, or what refuses them) in the
        thread ``key``: in line from now on. Outside a session it ends silently (``quiet``),
        or says how to start one."""
        surface = self.in_channel(message.channel, reply_to=message)
        return self._turn_in(surface, caller, key, text, uploads=uploads, quiet=quiet)

    def _turn_in(
        self,
        surface: ThreadSurface,
        caller: Caller,
        key: SessionKey,
        text: str,
        *,
        uploads: Sequence[Upload] | Exception = (),
        quiet: bool = True,
    ) -> Coroutine[Any, Any, object]:
        """A turn shown on ``surface``: see :meth:`_turn`."""

        def begin() -> TurnStream:
            if isinstance(uploads, Exception):
                raise uploads
            return self.sessions.reply(caller, key, text, uploads=uploads)

        return self.presenter.turn(surface, begin, quiet=(NotASession,) if quiet else ())

    async def _later(
        self,
        message: discord.Message,
        earlier: asyncio.Future[None] | None,
        joined: asyncio.Future[None],
    ) -> None:
        """Find the session of a message that could not join its line at once, download its
        files (while earlier messages of the channel may still be doing the same), then join
        the line after them (``earlier`` is done once the one before has joined) and say so
        (``joined``)."""
        show: Coroutine[Any, Any, object] | None = None
        try:
            place = await self._where(message)
            uploads: Sequence[Upload] | Exception = ()
            if place is not None and place.known and message.attachments:
                uploads = await self._uploads(message.attachments)
            if earlier is not None:
                await asyncio.wait([earlier])
            if place is not None:
                show = self._turn(
                    message,
                    place.caller,
                    place.key,
                    message.content,
                    uploads=uploads,
                    quiet=place.quiet,
                )
        finally:
            joined.set_result(None)
            if self._joining.get(message.channel.id) is joined:
                del self._joining[message.channel.id]
        if show is not None:
            await show

    async def _where(self, message: discord.Message) -> _Place | None:
        """Who sent ``message`` and for which session; None when it is for none and not worth
        a word (its files are not downloaded then).

        In a DM, the session is the most recently updated one started there. Messages of one
        uncached thread share one lookup of it.
        """
        channel = message.channel
        if message.guild is None:
            caller = caller_for(message.author, None, channel)
            mine = await self.sessions.list_sessions(caller)  # most recently updated first
            here = str(channel.id)
            found = next((s.key for s in mine if s.key.channel == here), None)
            key = found or SessionKey(
                platform="discord", workspace=caller.workspace, channel=here, thread=here
            )
            # without a session, the turn says how to start one; its files are not read
            return _Place(caller=caller, key=key, quiet=False, known=found is not None)
        thread = channel if isinstance(channel, discord.Thread) else None
        if thread is None:
            lookup = self._threads.get(channel.id)
            if lookup is None:
                lookup = asyncio.create_task(self._fetch_thread(channel.id))
                self._threads[channel.id] = lookup
                if len(self._threads) > _KNOWN_THREADS:
                    self._threads.pop(next(iter(self._threads)))
            thread = await lookup
        if thread is None:
            return None
        caller = caller_for(message.author, message.guild.id, thread)
        key = thread_key(caller.workspace, thread)
        if message.attachments and await self.sessions.find(key) is None:
            return None  # not a session: its files are not worth reading
        return _Place(caller=caller, key=key, quiet=True, known=True)

    async def _uploads(self, attachments: Sequence[discord.Attachment]) -> list[Upload] | Exception:
        """A message's files, downloaded through the client's HTTP; one over
        :data:`bot.files.MAX_FILE_BYTES` is not downloaded (the core refuses it by name). A
        failed download refuses the whole message (the person is told, and may post again)."""

        async def upload(attachment: discord.Attachment) -> Upload:
            data = None
            if attachment.size <= MAX_FILE_BYTES:
                try:
                    with refusals():
                        data = await attachment.read()
                except (PlatformRefused, aiohttp.ClientError) as err:
                    raise PlatformRefused("download_failed", attachment.filename) from err
            return Upload(name=attachment.filename, size=attachment.size, data=data)

        try:
            return list(await asyncio.gather(*(upload(a) for a in attachments)))
        except PlatformRefused as err:
            return err

    async def _fetch_thread(self, channel_id: int) -> discord.Thread | None:
        """The thread ``channel_id`` if the bot opened it (else None: not a session)."""
        try:
            with refusals():
                fetched = await self.client.fetch_channel(channel_id)
        except PlatformRefused as err:
            log.info("could not look up Discord channel %d: %s", channel_id, err)
            self._threads.pop(channel_id, None)  # try again with the next message
            return None
        me = self.client.user
        if isinstance(fetched, discord.Thread) and me is not None and fetched.owner_id == me.id:
            return fetched
        return None


def _attachment(attachment: discord.Attachment) -> dict[str, Any]:
    """What a job keeps of an attachment: enough to download it again
    (:class:`discord.Attachment`'s own payload fields)."""
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "size": attachment.size,
        "url": attachment.url,
        "proxy_url": attachment.proxy_url,
        "content_type": attachment.content_type,
    }


def _user(user_id: int) -> discord.abc.User:
    """The person a job's message is from, as far as :func:`caller_for` looks (their id)."""
    return cast(discord.abc.User, discord.Object(id=int(user_id)))


def _handle(message: discord.Message | discord.PartialMessage) -> dict[str, int]:
    """A message the bot is writing, as a job records it (see :meth:`DiscordAdapter._perform`)."""
    return {"channel": message.channel.id, "id": message.id}


async def sync_commands(
    token: str,
    *,
    guild: int | None = None,
    allow_dms: bool = False,
    api_url: str | None = None,
    http: HTTPClient | None = None,
) -> int:
    """Publish the slash commands over REST (no gateway connection): everywhere, or with
    ``guild`` to that one server, where they appear at once; how many were published.

    The bot does not sync at start-up: Discord allows 200 command creations a day, and every
    replica of a bot would sync. Run after installing and after an upgrade that changes the
    commands (``codethread discord sync``). Raises ``discord.LoginFailure`` for a bad token.
    """
    client = discord.Client(intents=discord.Intents.none())
    if http is None and api_url:
        http = ApiHTTPClient(api_url=api_url.rstrip("/"), max_ratelimit_timeout=None)
    _use_http(client, http)
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    for command in build_commands(cast(Interactions, None), allow_dms=allow_dms):
        tree.add_command(command)  # shapes only: no callback runs here
    where = discord.Object(id=guild) if guild is not None else None
    try:
        await client.login(token)
        if where is not None:
            tree.copy_global_to(guild=where)
        with refusals():
            return len(await tree.sync(guild=where))
    finally:
        await client.close()
