"""Errors the bot shows to users.

Every refusal is a :class:`UserError`; its ``str()`` is the one-line, friendly message an
adapter posts (ephemerally in chat, on stderr with a non-zero exit in the CLI). Engine failures
(:class:`engines.EngineError`) are a separate tree, turned into messages by the core::

    UserError
    ├── EmptyPrompt        nothing to work with
    ├── PromptTooLong      over the configured character limit
    ├── UnknownLanguage    not in the allow-list (names the choices)
    ├── UnknownModelRef    a model reference the catalog doesn't know (names the choices)
    ├── SessionNotFound    no such snippet id / thread
    ├── NotOwner           someone else's session
    ├── NotAllowed         user or channel outside the allow-lists
    ├── RateLimited        too many requests from one user
    └── ConfigError        a bad TOML file or environment value
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmptyPrompt",
    "NotAllowed",
    "NotOwner",
    "PromptTooLong",
    "RateLimited",
    "SessionNotFound",
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


class ConfigError(UserError):
    pass
