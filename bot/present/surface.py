"""What the presenter needs of a platform: a few verbs over views.

A surface belongs to one place and one person: a thread (or an interaction's response) where
public messages go, and the person who acted, whom :meth:`Surface.tell` reaches privately
(ephemeral in Slack and Discord, stderr-style in the terminal). It renders views into platform
output and raises :class:`~bot.present.words.PlatformRefused` when the platform says no, so the
presenter can word it; it never writes words of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from bot.present.views import Closed, View
from storage import Session

__all__ = ["Handle", "Surface"]

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
