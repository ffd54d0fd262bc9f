"""The one Slack message a turn or a run is shown in, and the place-in-line notice."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.render import Throttle
from bot.adapters.slack_blocks import Message, status_message

__all__ = ["LiveMessage", "QueueNotice"]

log = logging.getLogger("codethread.slack")


class LiveMessage:
    """One bot message in a thread: posted once, then edited at most once per ``interval``.

    Streaming edits are skipped while :meth:`due` says no; the final edit waits out the rest
    of the interval instead, so a message never sees more than one edit a second.
    """

    def __init__(
        self, client: AsyncWebClient, channel: str, thread_ts: str, *, interval: float
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.interval = interval
        self.ts: str | None = None
        self._throttle = Throttle(interval)

    def due(self) -> bool:
        return self._throttle.ready()

    async def show(self, message: Message, *, final: bool = False) -> None:
        if self.ts is None:
            posted = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
            )
            self.ts = str(posted["ts"])
        else:
            if final:
                await asyncio.sleep(self._throttle.remaining())
            await self.client.chat_update(
                channel=self.channel, ts=self.ts, text=message.text, blocks=message.blocks
            )
        self._throttle.restart()  # the interval counts from this edit


class QueueNotice:
    """``on_queued`` for a sandbox run: shows the caller's place in line in ``live``.

    The pool calls it synchronously, again each time the caller moves up; the edits run in
    one task, paced like every other edit, and show only the newest position.
    """

    def __init__(self, live: LiveMessage) -> None:
        self.live = live
        self._position: int | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, position: int) -> None:
        self._position = position
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._show())

    async def _show(self) -> None:
        shown: int | None = None
        while self._position != shown:
            shown = self._position
            text = f":hourglass: The sandbox is busy; you are #{shown} in line."
            await self.live.show(status_message(text), final=True)

    async def wait(self) -> None:
        """Let the last position edit finish (so the result edit comes after it)."""
        if self._task is not None:
            try:
                await self._task
            except Exception as err:  # the result still goes out; the notice was a nicety
                log.warning("could not show a place in line: %s", type(err).__name__)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
