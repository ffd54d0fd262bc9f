"""The neutral view values a surface shows: what to say, already worded, and what to offer.

Every view carries its body as markdown (``text``, within the surface's
:attr:`~bot.present.surface.Surface.limit`), a one-line ``summary`` (a notification, or the
fallback text of a rich message), the :class:`~bot.values.Action` s it offers as buttons, and
at most one file (a snippet or tests too long for a message), and the files a run made
(``outputs``). A surface turns these into Block
Kit, discord.py messages or terminal output; it chooses layout, never words. The classes say
what a view *is*, so a surface may style a kind (a status line small and grey, a failure red).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.values import Action, ActionKind

__all__ = [
    "ActionLook",
    "Attachment",
    "Closed",
    "FailureCard",
    "NonCodeAnswer",
    "Notice",
    "RequestPost",
    "RunCard",
    "Status",
    "VersionCard",
    "View",
    "Writing",
]


#: names a platform shows inline as a picture
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file that goes with a message: a long snippet, long tests, a long answer (text in
    ``content``), or a file a run made (bytes in ``data``)."""

    filename: str
    content: str = ""
    title: str
    language: str = ""  # the language's name, for a platform's highlighting of the file
    data: bytes | None = None

    @property
    def payload(self) -> bytes:
        return self.data if self.data is not None else self.content.encode()

    @property
    def image(self) -> bool:
        """A picture (a plot a run saved): shown inline where the platform can."""
        return self.filename.lower().endswith(IMAGE_SUFFIXES)


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    text: str
    summary: str
    actions: tuple[Action, ...] = ()
    file: Attachment | None = None
    #: files a run made, after ``file`` (images shown inline where the platform can)
    outputs: tuple[Attachment, ...] = ()

    @property
    def files(self) -> tuple[Attachment, ...]:
        """Every file of the message: ``file`` first, then the outputs."""
        return ((self.file,) if self.file else ()) + self.outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(View):
    """A line about a turn or run that is not under way yet: in line, loading, sandbox busy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Writing(View):
    """The answer while the model writes it: the newest part that fits, fences intact.

    ``pending`` until the first piece of the answer arrives (a surface may show a spinner).
    """

    pending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionCard(View):
    """A finished version: header, fenced code (or a preview and the file), the model's note.

    ``code`` and ``fence`` let a surface that can highlight (the terminal) show the code
    itself instead of the markdown.
    """

    header: str = ""
    code: str = ""
    fence: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCard(View):
    """A sandboxed run or test: summary, outputs, the tests; Fix when the code failed.

    ``outputs`` are the files the run made; ``session_id`` and ``number`` say whose (the
    terminal saves them under ``codethread-out/<session>-<version>/``).
    """

    passed: bool = False
    session_id: int = 0
    number: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NonCodeAnswer(View):
    """An answer without code (a question, a refusal): shown as such, no version made."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureCard(View):
    """A failed turn: the reason, and Retry when the request was kept."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(View):
    """A message for one person (a refusal, a confirmation, a /snippets answer), or a plain
    line in the thread (a session closed)."""

    problem: bool = False  # a refusal or error, as opposed to an answer


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(View):
    """The last word in a deleted session's thread (who deleted it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestPost(View):
    """The public post a session's thread hangs from: who asked, for what, with which model."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionLook:
    """How a button reads: its label, an emoji, and whether it is the main or a dangerous one."""

    kind: ActionKind
    label: str
    emoji: str
    style: str = "default"  # "primary", "danger" or "default"
    confirm: tuple[str, str, str, str] | None = None  # title, text, confirm, deny
