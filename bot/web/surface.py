"""The page as a surface: what the presenter shows for one button press, kept for the answer.

A button on the page (Run, Test, Fix, Revert, Download, Delete, Retry) is a plain form; its
handler hands the press to :meth:`bot.present.Presenter.act`, the entry point every
surface's buttons go through, so the page does exactly what a chat button does, with the same
refusals in the same words. The presenter shows its progress and result on this surface,
which only keeps them: the handler then redirects to the page that shows the new state, or
shows the refusal the presenter told (``problems``), or sends the file it posted (Download).
Streaming belongs to the page's script and the API; a press answers once, when it is done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.present import Attachment, Closed, FailureCard, NonCodeAnswer, Notice, View
from storage import Session

__all__ = ["PageSurface"]


@dataclass(eq=False)
class PageSurface:
    limit: int = 100_000  # a page has room; nothing needs to be cut for it
    edit_interval: float = 0.0
    shown: dict[int, View] = field(default_factory=dict)
    told: list[View] = field(default_factory=list)
    closed: Session | None = None

    def escape(self, text: str) -> str:
        return text  # the page's templates escape everything they show

    async def post(self, view: View) -> int:
        handle = len(self.shown) + 1
        self.shown[handle] = view
        return handle

    async def edit(self, handle: int, view: View) -> None:
        self.shown[handle] = view

    async def remove(self, handle: int) -> None:
        self.shown.pop(handle, None)

    async def tell(self, view: View) -> None:
        self.told.append(view)

    async def links(self, sessions: Sequence[Session]) -> Mapping[int, str]:
        return {s.id: f"/s/{s.id}" for s in sessions}

    def mention(self, user: str) -> str:
        return user

    async def close(self, session: Session, notice: Closed) -> None:
        self.closed = session

    # -- what the handler reads ----------------------------------------------------------------

    @property
    def problems(self) -> list[str]:
        """The refusals and errors the presenter told (``words.problem``: one line each)."""
        return [view.text for view in self.told if isinstance(view, Notice) and view.problem]

    @property
    def answers(self) -> list[str]:
        """What a turn ended with when it made no version: an answer without code, or the
        failure (the presenter's words, markdown as in chat)."""
        return [
            view.text
            for view in self.shown.values()
            if isinstance(view, NonCodeAnswer | FailureCard)
        ]

    @property
    def file(self) -> Attachment | None:
        """The file a message carried (a Download's snippet), if any."""
        return next((view.file for view in self.shown.values() if view.file), None)
