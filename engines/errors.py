"""Errors raised by engines.

Every failure an engine meets becomes an :class:`EngineError` whose ``str()`` is safe to show a
user (no keys, no tracebacks, no server internals beyond a status code)::

    EngineError
    ├── UnknownModel        a model reference that names nothing in the catalog
    ├── EngineNotInstalled  the engine's optional dependencies are missing (e.g. ``hf:``)
    ├── EngineNotReady      the model is still loading or failed to load
    ├── EngineBusy          the engine's queue is full
    ├── EngineTimeout       the server or model took too long
    ├── EngineRateLimited   the server said 429 after the SDK's own retries
    └── EngineUnavailable   connection refused, 5xx, bad key, malformed answer
"""

from __future__ import annotations

__all__ = [
    "EngineBusy",
    "EngineError",
    "EngineNotInstalled",
    "EngineNotReady",
    "EngineRateLimited",
    "EngineTimeout",
    "EngineUnavailable",
    "UnknownModel",
]


class EngineError(Exception):
    """Base of every engine failure; the message is written for the user."""


class UnknownModel(EngineError):
    def __init__(self, ref: str, choices: list[str]) -> None:
        self.ref = ref
        self.choices = choices
        super().__init__(
            f"Unknown model {ref!r}. Choose one of: {', '.join(choices)}; "
            "or name one as openai:<model-id> or hf:<hub-id-or-path>."
        )


class EngineNotInstalled(EngineError):
    pass


class EngineNotReady(EngineError):
    pass


class EngineBusy(EngineError):
    pass


class EngineTimeout(EngineError):
    pass


class EngineRateLimited(EngineError):
    pass


class EngineUnavailable(EngineError):
    pass
