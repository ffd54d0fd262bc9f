"""Platform-neutral values that cross between adapters, the presenter and the core.

An adapter turns a platform event into a :class:`Caller` (who asks, from where) and plain text;
the core answers a turn with a stream of :data:`Reply` events, always ending with exactly one of
:class:`Done`, :class:`NonCode` or :class:`Failed` (a message of files only ends after
:class:`Attached`). Which buttons a result offers is the core's
decision too: each result names its :class:`Action` s, and the presenter only shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from sandbox import RunResult
from storage import Session, SessionFile, Version

__all__ = [
    "Action",
    "ActionKind",
    "Attached",
    "Caller",
    "Comparison",
    "Done",
    "Failed",
    "Loading",
    "NonCode",
    "Progress",
    "Refusal",
    "Reply",
    "RunReport",
    "Started",
    "Upload",
    "Waiting",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """The person behind a request and the place they asked from.

    ``trusted`` callers run the bot themselves (the terminal user): they may name any model
    reference, not only the catalog's.
    """

    platform: str  # "console", "slack", "discord"
    workspace: str  # Slack team, Discord guild, host name for the console
    user: str  # platform user id
    channel: str = ""
    trusted: bool = False


ActionKind = Literal[
    "run", "input", "test", "fix", "diff", "revert", "download", "delete", "retry", "history"
]  # fmt: skip
_KINDS: frozenset[str] = frozenset(get_args(ActionKind))


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One thing a result offers to do next (a button), and exactly what it acts on.

    ``number`` is the version a Run, Run with input (``input``: the surface asks for stdin
    and arguments first), Test or Fix acts on; ``failure`` the stored failure a
    Retry sends again. :meth:`encode` gives the compact form platforms keep in a button
    (``run:12:3``), so that a button still works after a restart.
    """

    kind: ActionKind
    session_id: int
    number: int | None = None
    failure: int | None = None

    @property
    def makes_version(self) -> bool:
        """Whether the action's result is a new version (it streams into the thread, in the
        thread's turn order, like a reply)."""
        return self.kind in ("fix", "retry", "revert")

    def encode(self) -> str:
        extra = self.number if self.kind != "retry" else self.failure
        return f"{self.kind}:{self.session_id}" + (f":{extra}" if extra is not None else "")

    @classmethod
    def decode(cls, text: str) -> Action | None:
        """The action :meth:`encode` wrote, or None for anything else (ASCII digits only:
        ``str.isdigit`` also takes "²", which ``int`` refuses)."""
        kind, _, rest = text.partition(":")
        session, _, extra = rest.partition(":")
        digits = r"[0-9]{1,18}"  # 64-bit at most, as the store keeps them
        if kind not in _KINDS or not re.fullmatch(digits, session):
            return None
        if extra and not re.fullmatch(digits, extra):
            return None
        number = int(extra) if extra else None
        if kind == "retry":
            return cls(kind="retry", session_id=int(session), failure=number)
        return cls(kind=kind, session_id=int(session), number=number)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """Earlier turns of the same session are still running; this one is ``position`` in line."""

    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Loading:
    """The model is loading, or busy with other requests; the turn goes on when it can.

    ``position`` is this turn's place in the model's line (1 = next).
    """

    model: str
    position: int = 1
    busy: bool = False  # True: loaded but serving others; False: still loading


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    session: Session
    request: str
    number: int  # the version number this turn will produce
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    delta: str  # the newest piece of the answer
    text: str  # the whole answer so far


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    session: Session
    version: Version
    complete: bool = True  # False when the answer was cut off inside the code block


@dataclass(frozen=True, slots=True, kw_only=True)
class NonCode:
    """The model answered without code (a question, a refusal), or only with code in another
    language (``language``, its label); no version was made."""

    session: Session
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The turn failed; when the request was kept (``failure``), Retry sends it again."""

    session: Session
    message: str
    request: str
    failure: int | None = None  # the stored failure's id; None: nothing to retry
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A file someone gave a session: a thread attachment, or ``/attach PATH``.

    ``data`` is None when the adapter did not fetch it because ``size`` is over the limit
    (:data:`bot.files.MAX_FILE_BYTES`): the core refuses it by name without the download.
    """

    name: str
    size: int
    data: bytes | None


#: why a file was not kept: over the size of one file, one file too many, over the total
Refusal = Literal["too_big", "too_many", "too_much"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attached:
    """Files were stored with the session (``stored``) or refused (``refused``: name, why).

    A turn of files only, with no text, ends after this event: nothing was asked.
    """

    session: Session
    stored: tuple[SessionFile, ...] = ()
    refused: tuple[tuple[str, Refusal], ...] = ()


Reply = Waiting | Loading | Started | Progress | Done | NonCode | Failed | Attached


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Two versions of a session and the unified diff between them ("" when the same)."""

    session: Session
    old: Version
    new: Version
    diff: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """One sandboxed run of a version (or of unit tests against it), as the core stored it."""

    session: Session
    version: Version
    result: RunResult
    kind: Literal["run", "test"] = "run"
    tests: str = ""  # the unit tests a "test" run ran
    actions: tuple[Action, ...] = ()
    stdin: str = ""  # what the run was given on standard input
    args: tuple[str, ...] = ()  # and on its command line
    run_id: int | None = None  # the stored run (its files' URLs name it)
