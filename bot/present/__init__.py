"""Views, words and the one presenter: how codethread's answers look on every surface.

:mod:`.views` holds the neutral view values, :mod:`.words` every user-facing word,
:mod:`.live` the one throttled live message, :mod:`.surface` the small protocol a platform
implements, :mod:`.presenter` the only code that matches on the core's events, and
:mod:`.testing` a recording surface that lets all of it be tested once.
"""

from bot.present.live import LiveMessage, Throttle
from bot.present.presenter import Outcome, Presenter
from bot.present.surface import Surface
from bot.present.views import (
    ActionLook,
    Attachment,
    Closed,
    FailureCard,
    NonCodeAnswer,
    Notice,
    RequestPost,
    RunCard,
    Status,
    VersionCard,
    View,
    Writing,
)
from bot.present.words import PlatformRefused

__all__ = [
    "ActionLook",
    "Attachment",
    "Closed",
    "FailureCard",
    "LiveMessage",
    "NonCodeAnswer",
    "Notice",
    "Outcome",
    "PlatformRefused",
    "Presenter",
    "RequestPost",
    "RunCard",
    "Status",
    "Surface",
    "Throttle",
    "VersionCard",
    "View",
    "Writing",
]
