"""Platform-neutral values that cross between adapters and the core.

An adapter turns a platform event into a :class:`Caller` (who asks, from where) and plain text;
the core answers a turn with a stream of :data:`Reply` events, always ending with exactly one of
:class:`Done`, :class:`NonCode` or :class:`Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sandbox import RunResult
from storage import Session, Version

__all__ = [
    "Caller",
    "Done",
    "Failed",
    "Loading",
    "NonCode",
    "Progress",
    "Reply",
    "RunReport",
    "Started",
    "Waiting",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """The person behind a request and the place they asked from."""

    platform: str  # "console", "slack", "discord"
    workspace: str  # Slack team, Discord guild, host name for the console
    user: str  # platform user id
    channel: str = ""


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
    """The model answered without code (a question, a refusal); no version was made."""

    session: Session
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The engine failed; ``request`` is kept so that the user can retry."""

    session: Session
    message: str
    request: str


Reply = Waiting | Loading | Started | Progress | Done | NonCode | Failed


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """One sandboxed run of a version (or of unit tests against it), as the core stored it."""

    session: Session
    version: Version
    result: RunResult
    kind: Literal["run", "test"] = "run"
    tests: str = ""  # the unit tests a "test" run ran
