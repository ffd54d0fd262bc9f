"""Errors the bot shows to users.

Every refusal is a :class:`UserError`; its ``str()`` is the one-line, friendly message the
presenter shows (privately in chat, on stderr with a non-zero exit in the CLI). Engine failures
(:class:`engines.EngineError`) are a separate tree whose messages are already safe to show; the
core ends a turn with them as a :class:`~bot.values.Failed` event::

    UserError
    ├── EmptyPrompt        nothing to work with
    ├── PromptTooLong      over the configured character limit
    ├── ContextTooSmall    the current code and the request alone overflow the model's context
    ├── UnknownLanguage    not in the allow-list (names the choices)
    ├── UnknownModelRef    a model reference the catalog doesn't know (names the choices)
    ├── SessionNotFound    no such snippet id / thread, or another workspace's
    ├── NotASession        a thread that holds no snippet session
    ├── NotOwner           someone else's session
    ├── NotAllowed         user or channel outside the allow-lists
    ├── RateLimited        too many requests from one user
    ├── TurnTimeout        the model took longer than the turn timeout
    ├── StaleVersion       a Test or Fix of a version that is no longer the latest
    ├── Busy               a Test or Fix of this session is already running
    ├── NothingToDo        nothing to retry, fix or run (says why)
    ├── RunsDisabled       no working sandbox here (says why)
    └── ConfigError        a bad TOML file or environment value
"""

from __future__ import annotations

__all__ = [
    "Busy",
    "ConfigError",
    "ContextTooSmall",
    "EmptyPrompt",
    "NotASession",
    "NotAllowed",
    "NotOwner",
    "NothingToDo",
    "PromptTooLong",
    "RateLimited",
    "RunsDisabled",
    "SessionNotFound",
    "StaleVersion",
    "TurnTimeout",
    "UnknownLanguage",
    "UnknownModelRef",
    "UserError",
]


class UserError(Exception):
    """A refusal whose message is written for the user."""


class EmptyPrompt(UserError):
    def __init__(self) -> None:
        super().__init__("Tell me what the code should do, e.g. `parse a CSV and sum column 3`.")


class PromptTooLong(UserError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"That message is {length:,} characters; the limit is {limit:,}. "
            "Shorten it or split it into smaller steps."
        )


class ContextTooSmall(UserError):
    """The current code plus the request alone exceed the model's context."""


class UnknownLanguage(UserError):
    def __init__(self, word: str, choices: list[str]) -> None:
        self.choices = choices
        super().__init__(f"Unknown language {word!r}. Choose one of: {', '.join(choices)}.")


class UnknownModelRef(UserError):
    pass


class SessionNotFound(UserError):
    def __init__(self, ref: object) -> None:
        super().__init__(
            f"No snippet session {ref}. `/snippets` (or `codethread snippets list`) lists yours."
        )


class NotASession(UserError):
    def __init__(self) -> None:
        super().__init__(
            "There is no snippet session here yet. Start one with `/code PROMPT` (or mention "
            "me in a channel, outside a thread); replies in its thread then change it."
        )


class NotOwner(UserError):
    def __init__(self, session_id: int) -> None:
        super().__init__(
            f"Session {session_id} belongs to someone else; only its owner can do that."
        )


class NotAllowed(UserError):
    pass


class RateLimited(UserError):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"You're sending requests faster than the limit; try again in {retry_after:.0f} s."
        )


class TurnTimeout(UserError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"The model took longer than {seconds:.0f} s.")


class StaleVersion(UserError):
    def __init__(self, what: str, session_id: int, number: int, latest: int) -> None:
        super().__init__(
            f"{what} works on the latest version, and version {number} of snippet "
            f"#{session_id} is no longer the latest: use the buttons of version {latest}."
        )


class Busy(UserError):
    pass


class NothingToDo(UserError):
    pass


class RunsDisabled(UserError):
    pass


class ConfigError(UserError):
    pass
