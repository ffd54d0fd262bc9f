"""What the presenter needs of a platform: a few verbs over views.

A surface belongs to one place and one person: a thread (or an interaction's response) where
public messages go, and the person who acted, whom :meth:`Surface.tell` reaches privately
(ephemeral in Slack and Discord, stderr-style in the terminal). It renders views into platform
output and raises :class:`~bot.present.words.PlatformRefused` when the platform says no, so the
presenter can word it; it never writes words of its own.

A surface may offer more than the protocol asks, and the presenter uses it where it is there
(checked with ``isinstance`` against the small protocols below, so a surface that offers
nothing new behaves as before):

- :class:`Streams`: the platform streams a message natively (Slack's ``chat.startStream``);
  the answer is appended as it arrives instead of edited in, and the result ends the stream.
- :class:`StatusLine`: the platform shows a status next to the conversation (Slack's
  assistant threads); waiting, loading and writing go there instead of into a message.
- ``edit_minimum`` (seconds, default 0): the platform's hard minimum between two edits of one
  message. :attr:`Surface.edit_interval` paces the streaming edits within a rate budget; the
  last edit of an answer goes out at once, keeping only this minimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from bot.present.views import Closed, View
from storage import Session

__all__ = ["Handle", "StatusLine", "Stream", "Streams", "Surface"]

Handle = TypeVar("Handle")


class Surface(Protocol[Handle]):
    #: characters of markdown one message holds
    limit: int
    #: seconds between two edits of one message (the platform's pace)
    edit_interval: float

    def escape(self, text: str) -> str:
        """``text`` that people wrote, made safe inside the surface's markup."""
        ...

    async def post(self, view: View) -> Handle:
        """Show ``view`` as a new public message here; the handle edits or removes it."""
        ...

    async def edit(self, handle: Handle, view: View) -> None:
        """Replace a message's content, buttons and file with ``view``."""
        ...

    async def remove(self, handle: Handle) -> None:
        """Take a message back (best effort)."""
        ...

    async def tell(self, view: View) -> None:
        """Show ``view`` to the person who acted, and only to them."""
        ...

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        """Where each session's thread is: a URL, or a platform reference (``<#123>``)."""
        ...

    def mention(self, user: str) -> str:
        """How the platform names a user in a message."""
        ...

    async def close(self, session: Session, notice: Closed) -> None:
        """A session was deleted: tidy its thread (remove the bot's messages, archive it) and
        leave ``notice`` there."""
        ...


# -- optional capabilities ------------------------------------------------------------------------


@runtime_checkable
class Stream(Protocol):
    """One natively streamed message: the answer appended as it arrives, then the result."""

    def append(self, delta: str) -> None:
        """Add the newest piece of the answer (sent at the platform's pace, never awaited)."""
        ...

    async def stop(self, view: View) -> None:
        """End the stream with ``view`` (its buttons, its file; fences left closed). Raises
        :class:`~bot.present.words.PlatformRefused` when the result could not be shown there,
        so that the presenter posts it anew."""
        ...


@runtime_checkable
class Streams(Protocol):
    async def stream(self) -> Stream | None:
        """Start a streamed message here; None where the platform refuses (the presenter then
        edits one message, as on any surface)."""
        ...


@runtime_checkable
class StatusLine(Protocol):
    async def status(self, text: str) -> bool:
        """Show ``text`` (a status view's markdown; "" clears it) as the conversation's status;
        False where there is no such place (the presenter then shows the view as a message)."""
        ...
