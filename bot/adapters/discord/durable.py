"""Durable button presses and ``/code`` on Discord: a job row before Discord hears "ok".

With a :class:`~bot.jobs.Worker` (``serve``), a button press (Run, Test, Fix, Retry, Revert,
Diff, Download, Delete, View history) and a ``/code`` with its prompt are written down as a
job, unique by the interaction's id, *before* the interaction is acknowledged; the worker then
acts on it (:meth:`DurableInteractions.perform_press`, :meth:`~DurableInteractions.perform_code`),
in this process or in any other sharing the database:

- **once**: the same interaction delivered again (a gateway RESUME replaying it, two
  processes on one shard during a deploy) adds nothing and is not acknowledged a second time;
- **answerable from anywhere**: the job holds what answers the interaction later
  (:class:`RecordedInteraction`: the application id and the token, which Discord honours for
  15 minutes from the interaction's creation, the guild, channel and pressed message) and who
  acted (:class:`~bot.values.Caller`), so a process that did not receive it fills its
  deferred response and sends its followups through the interaction's webhook;
- **after a crash**: a press whose process died is taken over (:mod:`bot.jobs`); the message
  that attempt was writing says "Interrupted by a restart — doing it again below" and the
  action is done again under it. A ``/code`` notes the request post it hangs its thread from
  (``parent``) and the answer in the thread (``message``), so that the next attempt goes on in
  the same thread: it says so in the answer's message, then opens the session (or, stored
  already, answers it, or shows the version stored).

Checks that need the interaction itself (whose session a button belongs to, whether the member
may post here, whether ``/code`` can open a thread here) run before anything is written: a
refusal is the acknowledgement, told only to the person, and no job.

The acknowledgement comes after the row, so the worker must not answer before it: the process
that received the interaction hands its outcome to its own worker (a press whose
acknowledgement failed is not acted on: Discord has told the person it failed, and they may
press again). A job claimed by another process, or by this one after a restart, waits until
the interaction is :data:`ACK_WINDOW` old, by which time the receiver has acknowledged it or
never will; it then answers through the token, which falls back to the channel when refused.

Past the token's life (a takeover more than 15 minutes after the press, less the one minute
:data:`~bot.adapters.discord.surface.TOKEN_MARGIN`), public answers are posted in the thread
with the bot's own token instead, as replies to the pressed message (what
:class:`~bot.adapters.discord.surface.ResponseSurface` does past the token's life; Fix, Retry
and Revert post there anyway, their refusals too). A private answer (a refusal of a public
action, Delete's confirmation, View history's sign-in link, which must never be public) has
no way left to the person: the presenter logs that they could not be told, and the job
finishes.

Not durable: the Run with input… button (its form must answer within 3 seconds) and the
form's submission (like Slack's: a lost submission is typed again), and ``/snippets``, whose
answers are private, quick and reads (or, for ``delete`` and ``run``, safe to ask again): they
are answered in memory, and one cut short by a restart is asked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, cast

import discord

from bot.adapters.discord.interactions import open_thread
from bot.adapters.discord.surface import (
    DM_WORKSPACE,
    TOKEN_MARGIN,
    ResponseSurface,
    ThreadSurface,
    refusals,
    thread_key,
)
from bot.core import StartCheck
from bot.jobs import Journal, Worker
from bot.present import PlatformRefused
from bot.present.journal import Journaled
from bot.values import Action, Caller
from storage import Job, SessionKey

if TYPE_CHECKING:
    from bot.adapters.discord.adapter import DiscordAdapter

__all__ = ["ACK_WINDOW", "CODE_KIND", "PRESS_KIND", "DurableInteractions", "RecordedInteraction"]

log = logging.getLogger("codethread.discord")

PRESS_KIND = "discord.press"  # a button pressed under a result, as a durable job
CODE_KIND = "discord.code"  # a /code with its prompt, as a durable job
#: Discord's window for acknowledging an interaction; a job claimed by a process that did not
#: receive it waits until the interaction is this old (see the module's docstring)
ACK_WINDOW = datetime.timedelta(seconds=3)
TOKEN_LIFE = datetime.timedelta(minutes=15)
_KNOWN_ACKS = 1000  # acknowledgements of this process remembered for its worker

Interaction = discord.Interaction[discord.Client]
Messageable = discord.abc.Messageable
#: where an interaction happened, as this process can reach it (each has get_partial_message)
Place = (
    discord.TextChannel
    | discord.Thread
    | discord.VoiceChannel
    | discord.StageChannel
    | discord.DMChannel
    | discord.PartialMessageable
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedInteraction:
    """An interaction as a job keeps it: enough to answer it from another process.

    ``message`` is the message whose button was pressed (None for a slash command). The token
    is a secret for its 15 minutes: it is kept out of the ``repr``, and so out of logs.
    """

    id: int
    application_id: int
    type: int  # discord.InteractionType: 2 a slash command, 3 a button
    token: str = field(repr=False)
    guild: int | None
    channel: int
    message: int | None = None

    @classmethod
    def of(cls, interaction: Interaction) -> Self:
        pressed = interaction.message
        return cls(
            id=interaction.id,
            application_id=interaction.application_id,
            type=interaction.type.value,
            token=interaction.token,
            guild=interaction.guild_id,
            channel=interaction.channel_id or 0,
            message=pressed.id if pressed is not None else None,
        )

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "application_id": self.application_id,
            "type": self.type,
            "token": self.token,
            "guild": self.guild,
            "channel": self.channel,
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        guild, message = data.get("guild"), data.get("message")
        return cls(
            id=int(data["id"]),
            application_id=int(data["application_id"]),
            type=int(data["type"]),
            token=str(data["token"]),
            guild=int(guild) if guild is not None else None,
            channel=int(data["channel"]),
            message=int(message) if message is not None else None,
        )

    @property
    def created_at(self) -> datetime.datetime:
        return discord.utils.snowflake_time(self.id)

    def alive(self) -> bool:
        """Whether the token may still be used (within its life, less the margin)."""
        return discord.utils.utcnow() < self.created_at + TOKEN_LIFE - TOKEN_MARGIN

    def revive(
        self,
        client: discord.Client,
        channel: Place,
        *,
        deferred: discord.InteractionResponseType,
    ) -> Interaction:
        """The interaction again, in ``channel``, its response already ``deferred`` (by the
        process that received it): its original response, followups and expiry work as on
        the one discord.py made. (It has no user: who acted is the job's caller.)

        discord.py 2.7 builds an interaction only from a gateway payload, and keeps whether
        it was answered in ``InteractionResponse._response_type``; both are internals, which
        is one reason discord.py is pinned to a minor version."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "application_id": str(self.application_id),
            "type": self.type,
            "token": self.token,
            "version": 1,
            "attachment_size_limit": 0,
        }
        if self.guild is not None:
            data["guild_id"] = str(self.guild)
        interaction: Interaction = discord.Interaction(
            data=cast(Any, data), state=client._connection
        )
        interaction.channel = cast(Any, channel)
        if self.message is not None:
            interaction.message = cast(discord.Message, channel.get_partial_message(self.message))
        interaction.response._response_type = deferred
        return interaction


@dataclass(frozen=True, slots=True)
class _Ack:
    """How this process's acknowledgement of an interaction went: ``done`` (else Discord has
    told the person it failed), and the public "thinking…" post it made, if any."""

    done: bool
    original: int | None = None


def _caller(data: Mapping[str, Any]) -> Caller:
    return Caller(
        platform="discord",
        workspace=str(data["workspace"]),
        user=str(data["user"]),
        channel=str(data["channel"]),
    )


def _recorded_caller(caller: Caller) -> dict[str, str]:
    return {"workspace": caller.workspace, "user": caller.user, "channel": caller.channel}


def _settle(ack: asyncio.Future[_Ack | None], outcome: _Ack | None) -> None:
    """Tell the worker how an acknowledgement went (the first word stands: a future
    forgotten to keep memory bounded was told None already)."""
    if not ack.done():
        ack.set_result(outcome)


def _handle(message: discord.Message | discord.PartialMessage) -> dict[str, int]:
    """A message the bot is writing, as a job records it."""
    return {"channel": message.channel.id, "id": message.id}


class DurableInteractions:
    """Presses and ``/code`` as jobs: :meth:`press` and :meth:`code` write them down and
    acknowledge them; the worker performs them (:meth:`perform_press`, :meth:`perform_code`)."""

    #: how old an interaction must be before a process that did not receive it answers it
    ack_window: datetime.timedelta = ACK_WINDOW

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter
        self.sessions = adapter.sessions
        self.presenter = adapter.presenter
        #: per delivery, this process's acknowledgement (None: this process did not make one)
        self._acks: OrderedDict[str, asyncio.Future[_Ack | None]] = OrderedDict()

    @property
    def client(self) -> discord.Client:
        return self.adapter.client

    # -- accepting ---------------------------------------------------------------------------

    async def press(
        self,
        worker: Worker,
        interaction: Interaction,
        caller: Caller,
        action: Action,
        place: ThreadSurface | ResponseSurface,
        *,
        streams: bool,
    ) -> None:
        """A checked button press: written down, then acknowledged (with "thinking…",
        privately for Delete; a Fix, Retry or Revert, whose version streams in the thread,
        without)."""

        async def acknowledge() -> int | None:
            if isinstance(place, ResponseSurface):
                await place.acknowledge(private=action.kind == "delete")
                return place.original
            with refusals():
                await interaction.response.defer()
            return None

        payload = {
            "interaction": RecordedInteraction.of(interaction).payload(),
            "caller": _recorded_caller(caller),
            "action": action.encode(),
            "streams": streams,
        }
        await self._accept(
            worker, interaction, PRESS_KIND, payload, acknowledge,
            lambda err: self.presenter.fail(place, err),
        )  # fmt: skip

    async def code(
        self,
        worker: Worker,
        interaction: Interaction,
        surface: ResponseSurface,
        caller: Caller,
        *,
        prompt: str,
        language: str | None,
        model: str | None,
    ) -> None:
        """A checked ``/code``: written down, then deferred publicly ("thinking…")."""

        async def acknowledge() -> int | None:
            await surface.acknowledge()
            return surface.original

        payload = {
            "interaction": RecordedInteraction.of(interaction).payload(),
            "caller": _recorded_caller(caller),
            "prompt": prompt,
            "language": language,
            "model": model,
        }
        await self._accept(
            worker, interaction, CODE_KIND, payload, acknowledge,
            lambda err: self.presenter.fail(surface, err, request=prompt),
        )  # fmt: skip

    async def _accept(
        self,
        worker: Worker,
        interaction: Interaction,
        kind: str,
        payload: Mapping[str, Any],
        acknowledge: Callable[[], Awaitable[int | None]],
        fail: Callable[[Exception], Awaitable[None]],
    ) -> None:
        """Write the interaction down as a job (its own lane: it waits behind nothing; the
        core orders what must be ordered), then acknowledge it, and tell this process's worker
        how that went. A delivery seen before, here or by another process, does nothing."""
        delivery = f"discord:interaction:{interaction.id}"
        if delivery in self._acks:  # delivered again to this process
            self.adapter.count("duplicate")
            return
        ack: asyncio.Future[_Ack | None] = asyncio.get_running_loop().create_future()
        self._acks[delivery] = ack  # before the row: the worker may claim it at once
        if len(self._acks) > _KNOWN_ACKS:
            _settle(self._acks.popitem(last=False)[1], None)
        try:
            try:
                accepted = await worker.accept(
                    delivery=delivery, lane=delivery, kind=kind, payload=payload
                )
            except Exception as err:  # the database is away: nothing written, say so
                await fail(err)
                return
            if not accepted:  # another process has it
                self.adapter.count("duplicate")
                return
            try:
                original = await acknowledge()
            except Exception as err:
                _settle(ack, _Ack(done=False))
                await fail(err)
                return
            _settle(ack, _Ack(done=True, original=original))
        finally:
            _settle(ack, None)  # cut short: unknown, as if acknowledged elsewhere

    async def _acknowledged(
        self, job: Job, journal: Journal, recorded: RecordedInteraction
    ) -> _Ack:
        """How the interaction was acknowledged, once it has been (see the module's
        docstring); its "thinking…" post is noted for a later attempt."""
        mine = self._acks.get(job.delivery)
        known = await asyncio.shield(mine) if mine is not None else None
        if known is None:  # received elsewhere, or before a restart
            if not journal.resumed:
                wait = recorded.created_at + self.ack_window - discord.utils.utcnow()
                if wait > datetime.timedelta(0):
                    await asyncio.sleep(wait.total_seconds())
            noted = journal.earlier("original")
            return _Ack(done=True, original=int(noted) if noted is not None else None)
        if known.done and known.original is not None and not journal.resumed:
            await journal.note("original", known.original)
        return known

    # -- performing --------------------------------------------------------------------------

    async def _channel(self, recorded: RecordedInteraction) -> Place:
        """Where the interaction was: from the cache, else looked up (a server this process
        does not hold, another shard's: the channel then comes with the server's id, which
        opening a thread needs), else by its id alone (a DM)."""
        cached = self.client.get_channel(recorded.channel)
        if isinstance(cached, Place):
            return cached
        if recorded.guild is not None:
            try:
                with refusals():
                    fetched = await self.client.fetch_channel(recorded.channel)
                if isinstance(fetched, Place):
                    return fetched
            except PlatformRefused as err:
                log.info("could not look up Discord channel %d: %s", recorded.channel, err)
        return self.client.get_partial_messageable(recorded.channel, guild_id=recorded.guild)

    def _message(self, handle: Mapping[str, Any], guild: int | None) -> discord.Message:
        """A message a job noted, to edit with the bot's token (the interaction's may be
        gone; a refused edit is posted anew by the presenter)."""
        channel = self.client.get_partial_messageable(int(handle["channel"]), guild_id=guild)
        return cast(discord.Message, channel.get_partial_message(int(handle["id"])))

    def _response(
        self, interaction: Interaction, ack: _Ack, *, private: bool, filled: bool
    ) -> ResponseSurface:
        """The interaction's response as its acknowledgement left it; ``filled`` by an earlier
        attempt, whose message (now saying it was interrupted) is then never taken away."""
        return ResponseSurface.taken_over(
            self.client,
            self.adapter.edit_interval,
            interaction,
            private=private,
            original=None if filled else ack.original,
            filled=filled,
        )

    async def perform_press(self, job: Job, journal: Journal) -> None:
        """A press written down by :meth:`press`, acted on now. Performed again after a
        crash, the message the first attempt was writing says so first, and the action's
        answer comes below it."""
        payload = job.payload
        action = Action.decode(str(payload["action"]))
        if action is None:
            return
        recorded = RecordedInteraction.from_payload(payload["interaction"])
        ack = await self._acknowledged(job, journal, recorded)
        if not ack.done:
            return
        caller = _caller(payload["caller"])
        channel = await self._channel(recorded)
        streams = bool(payload["streams"])
        deferred = discord.InteractionResponseType
        interaction = recorded.revive(
            self.client,
            channel,
            deferred=deferred.deferred_message_update
            if streams
            else deferred.deferred_channel_message,
        )
        previous = journal.previous if journal.resumed else None
        surface: ThreadSurface | ResponseSurface
        if streams:  # the next version streams in the thread, as a reply to the pressed one
            surface = self.adapter.in_channel(
                channel,
                reply_to=interaction.message,
                interaction=interaction if recorded.alive() else None,
            )
        else:  # an answer before was the response: this one's go below it
            surface = self._response(
                interaction, ack, private=action.kind == "delete", filled=previous is not None
            )
        if isinstance(previous, dict):
            interrupted = self._message(previous, recorded.guild)
            await self.presenter.restarted(surface, interrupted, answer=False)
        journaled = Journaled(surface, journal.message, _handle)
        await self.presenter.act(journaled, caller, action)

    async def perform_code(self, job: Job, journal: Journal) -> None:
        """A ``/code`` written down by :meth:`code`, performed now: the request post fills
        the deferred response, the thread opens from it, and the session's first turn is
        shown there. The request post and the answer are noted as they are posted, so that an
        attempt after a crash goes on in the same thread."""
        payload = job.payload
        recorded = RecordedInteraction.from_payload(payload["interaction"])
        ack = await self._acknowledged(job, journal, recorded)
        if not ack.done:
            return
        caller = _caller(payload["caller"])
        channel = await self._channel(recorded)
        interaction = recorded.revive(
            self.client, channel, deferred=discord.InteractionResponseType.deferred_channel_message
        )
        parent = journal.earlier("parent") if journal.resumed else None
        surface = self._response(interaction, ack, private=False, filled=parent is not None)
        prompt = str(payload["prompt"])
        try:
            checked = self.sessions.check(
                caller, prompt=prompt, language=payload["language"], model=payload["model"]
            )
            if isinstance(parent, dict):
                posted = channel.get_partial_message(int(parent["id"]))
                where, key = await self._thread_of(posted, caller, checked)
            else:
                where, key = await self._start(surface, journal, caller, checked)
        except Exception as err:
            await self.presenter.fail(surface, err, request=prompt)
            return
        place = self.adapter.in_channel(
            where, interaction=interaction if recorded.alive() else None
        )
        previous = journal.previous if journal.resumed else None
        if isinstance(previous, dict):
            handle = self._message(previous, recorded.guild)
            if await self.presenter.resume(place, handle, key, checked.prompt, job.created_at):
                return
        journaled = Journaled(place, journal.message, _handle)
        session = await self.sessions.find(key) if parent is not None else None
        if session is None:
            begin = functools.partial(self.sessions.open, caller, key, checked)
        else:  # stored before the crash, its version not: ask for it now
            begin = functools.partial(self.sessions.turn, session, caller, checked.prompt)
        await self.presenter.turn(journaled, begin, request=checked.prompt)

    async def _start(
        self, surface: ResponseSurface, journal: Journal, caller: Caller, checked: StartCheck
    ) -> tuple[Messageable, SessionKey]:
        """Post the request (noted as the ``parent``) and open its thread; the post is taken
        back when the thread cannot be opened."""
        noted = Journaled(surface, functools.partial(journal.note, "parent"), _handle)
        message: discord.Message = await noted.post(
            self.presenter.request_post(surface, caller, checked)
        )
        try:
            return await open_thread(message, caller, checked)
        except Exception:
            with contextlib.suppress(PlatformRefused):
                await surface.remove(message)  # no request post without its thread
            raise

    async def _thread_of(
        self, parent: discord.PartialMessage, caller: Caller, checked: StartCheck
    ) -> tuple[Messageable, SessionKey]:
        """The thread of a request post an earlier attempt made: Discord gives a thread
        opened from a message that message's id; opened now if that attempt did not get so
        far. (In a DM, the session lives beside its request post.)"""
        if caller.workspace != DM_WORKSPACE:
            thread = await self.adapter.owned_thread(parent.id)
            if thread is not None:
                return thread, thread_key(caller.workspace, thread)
        return await open_thread(parent, caller, checked)
