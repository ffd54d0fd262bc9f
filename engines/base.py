"""The engine interface: one small class per backend, one method that yields text.

An engine knows nothing about code, sessions or chat platforms. It turns a
:class:`GenerationRequest` (a list of chat messages plus sampling bounds) into a stream of
text deltas. Lifecycle: :meth:`Engine.start` loads or warms the model when the service starts
(never on the first request), :meth:`Engine.aclose` releases it, and :attr:`Engine.readiness`
tells the bot what to show ("loading", "ready", "failed: ...").
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = ["ChatMessage", "Engine", "GenerationRequest", "Readiness", "Usage"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    temperature: float = 0.2
    max_tokens: int = 2048


@dataclass(slots=True, kw_only=True)
class Usage:
    """Token counts of the last finished request, filled in by the engine when it knows them."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    state: Literal["loading", "ready", "failed"]
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


class Engine(abc.ABC):
    """Base class of every backend.

    Subclasses set the capability attributes and implement :meth:`_stream`; :meth:`stream`
    wraps it so that the usage of each call can be read back from the iterator's ``usage``.
    """

    #: the scheme of model references this engine serves (``openai``, ``hf``, ``fake``)
    scheme: ClassVar[str]
    #: environment variable holding a key, if the backend needs one
    key_env: ClassVar[str | None] = None
    #: True when start() loads weights into this process (slow, memory-hungry)
    loads_weights: ClassVar[bool] = False

    def __init__(self, *, model: str, context_window: int = 8192) -> None:
        self.model = model
        #: tokens the model can attend to; the bot trims history to fit
        self.context_window = context_window
        self._readiness = Readiness(state="loading")

    @property
    def readiness(self) -> Readiness:
        return self._readiness

    @property
    def pending(self) -> int:
        """Requests accepted but still waiting for the model (loading, or a full batch)."""
        return 0

    async def start(self) -> None:
        """Load or warm the model. The default has nothing to load."""
        self._readiness = Readiness(state="ready")

    async def aclose(self) -> None:  # noqa: B027 - an optional hook; most engines hold nothing
        """Release what :meth:`start` acquired."""

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> AsyncGenerator[str]:
        """Yield text deltas of the model's answer; fill ``usage`` when the backend reports it.

        Raises :class:`engines.errors.EngineError` (only) on failure.
        """
        return self._stream(request, usage if usage is not None else Usage())

    @abc.abstractmethod
    def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme}:{self.model} {self.readiness}>"
