"""The engine interface: one small class per backend, and the values it exchanges with the bot.

An engine knows nothing about code, sessions or chat platforms. It turns a
:class:`GenerationRequest` (chat messages, a temperature, a bound on generated tokens) into a
stream of text deltas. What the bot uses of an :class:`Engine`:

- :meth:`~Engine.stream` ``(request, usage)``: an async generator of text deltas that fills the
  caller's :class:`Usage` with token counts as the backend reports them, and raises only
  :class:`~engines.errors.EngineError` (its message is safe to show). Closing the generator
  early (the user gave up, the task was cancelled) ends the request;
- :meth:`~Engine.start`: load or warm the model when the service starts, never on the first
  request. A model that cannot load is reported through :attr:`~Engine.readiness`, not raised;
- :meth:`~Engine.aclose`: release what ``start`` acquired (a client, the weights);
- :attr:`~Engine.readiness`: what ``codethread models`` and ``/healthz`` show, ``loading``
  (also before ``start``), ``ready`` or ``failed: <reason>``;
- :attr:`~Engine.pending`: requests accepted but still waiting for the model (it is loading, or
  its batch is full), so the bot can tell a user their place in line;
- :attr:`~Engine.context_window`: tokens the model attends to (a local engine lowers it at load
  to what the checkpoint supports); the bot trims history to fit;
- :meth:`~Engine.count_tokens`: the real length of a prompt in tokens where the engine can tell
  (a local engine has the tokenizer), so the bot trims history by it; None elsewhere, and the
  bot falls back to an estimate;
- the class attributes :attr:`~Engine.scheme` (the ``ref`` prefix it serves),
  :attr:`~Engine.key_env` (the variable with its key, if any) and :attr:`~Engine.loads_weights`
  (``start`` loads a model into this process: slow and memory-hungry, so the bot never starts
  such an engine just to report its status).

Backends: :mod:`engines.openai_compat` (``openai:``), :mod:`engines.local` (``hf:``,
``hf-chatml:``) and :mod:`engines.fake` (``fake:``); :mod:`engines.registry` builds one from a
:class:`~engines.catalog.ModelSpec`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = ["ChatMessage", "Engine", "GenerationRequest", "Readiness", "Usage"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """One message of the conversation the model continues."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """What to answer and how: the messages, oldest first, and the sampling bounds."""

    messages: tuple[ChatMessage, ...]
    temperature: float = 0.2
    #: the most tokens to generate; an engine lowers it to its model's ``max_new_tokens`` (and a
    #: local one to the room left in the context)
    max_tokens: int = 2048
    # Hints a server may use and an engine may ignore (each entry says which it sends):
    #: text the answer will largely repeat (the current code on an adjust turn): a Predicted
    #: Output, so the unchanged part streams back fast
    prediction: str | None = None
    #: a stable key per conversation, so the server's prompt cache finds its earlier prefix
    cache_key: str | None = None
    #: an opaque, already hashed id of the person asking (never a raw platform id), for the
    #: server's abuse detection (OpenAI's ``safety_identifier``)
    user: str | None = None


@dataclass(slots=True, kw_only=True)
class Usage:
    """Token counts of one request, written by the engine while it streams, as it learns them.

    The caller makes one per request and reads it after the stream ends; a count the backend
    does not report stays None.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """Whether an engine can answer; ``str()`` is what users see (``failed: <detail>``)."""

    state: Literal["loading", "ready", "failed"]
    #: for ``failed``, the reason and its fix, written for the user
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


class Engine(abc.ABC):
    """Base class of every backend (see the module doc for what the bot uses).

    A subclass sets :attr:`scheme` (and :attr:`key_env`, :attr:`loads_weights` where they
    apply), implements :meth:`_stream`, and overrides :meth:`start`, :meth:`aclose` and
    :attr:`pending` when it has something to load, release or queue. The base is ready once
    started, holds nothing and never queues.
    """

    #: the scheme of model references this engine serves (``openai``, ``hf``, ``fake``)
    scheme: ClassVar[str]
    #: environment variable holding a key, if the backend needs one
    key_env: ClassVar[str | None] = None
    #: True when start() loads weights into this process (slow, memory-hungry)
    loads_weights: ClassVar[bool] = False

    def __init__(self, *, model: str, context_window: int = 8192) -> None:
        #: the model id this engine serves (the target of its ``ref``)
        self.model = model
        #: tokens the model can attend to; the bot trims history to fit
        self.context_window = context_window
        self._readiness = Readiness(state="loading")

    @property
    def readiness(self) -> Readiness:
        """``loading`` until :meth:`start` has finished, then ``ready`` or ``failed``."""
        return self._readiness

    @property
    def pending(self) -> int:
        """Requests accepted but still waiting for the model (loading, or a full batch)."""
        return 0

    async def start(self) -> None:
        """Load or warm the model, and set :attr:`readiness`. The default has nothing to load.

        Called once when the service starts. Requests made while it runs wait for it where
        loading takes time (counted in :attr:`pending`).
        """
        self._readiness = Readiness(state="ready")

    async def aclose(self) -> None:  # noqa: B027 - an optional hook; most engines hold nothing
        """Release what :meth:`start` acquired."""

    async def probe(self) -> Readiness:
        """Ask the backend whether it answers now (a server: one cheap request, a short
        timeout) and set :attr:`readiness` from that. The default knows nothing more than
        :meth:`start` found. Never raises."""
        return self._readiness

    async def server_models(self) -> list[str]:
        """The model ids the backend offers (a server's ``GET /models``); [] when it cannot
        tell. Raises :class:`~engines.errors.EngineError` when the backend does not answer."""
        return []

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int | None:
        """Tokens the prompt for ``messages`` takes, or None when this engine cannot tell.

        Called on the event loop while the bot trims history, so it must be quick (a local
        tokenizer, not a request). The default cannot tell: the bot estimates instead.
        """
        return None

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> AsyncGenerator[str]:
        """Yield text deltas of the model's answer; fill ``usage`` as the backend reports counts.

        Raises :class:`engines.errors.EngineError` (only) on failure, possibly after some deltas
        (the answer broke off). Without ``usage`` the counts are dropped.
        """
        return self._stream(request, usage if usage is not None else Usage())

    @abc.abstractmethod
    def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        """The backend's generator behind :meth:`stream` (``usage`` is always given)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme}:{self.model} {self.readiness}>"
