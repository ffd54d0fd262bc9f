"""The local engine: a transformers model in this process, loaded at start, streamed, batched.

Serves ``hf:<hub-id-or-local-path>`` (:class:`LocalEngine`, prompt from the tokenizer's chat
template) and ``hf-chatml:<...>`` (:class:`ChatMLEngine`, a hand-built ChatML prompt for models
without a template). :meth:`LocalEngine.start` loads the tokenizer and model in a worker thread
(``device_map="auto"`` when accelerate is installed, the checkpoint's dtype, 4/8-bit
quantization with bitsandbytes when the spec asks, local files only when ``HF_HUB_OFFLINE`` is
set or the target is a folder); readiness goes "loading" -> "ready" or "failed: <reason and
fix>". Requests that arrive meanwhile wait (:attr:`LocalEngine.pending` counts them).

Generation runs in transformers' continuous-batching thread (:mod:`engines.local_batching`),
which pushes each step's tokens onto the event loop; the loop turns the new tokens of each
request into text with ``tokenizers``' ``DecodeStream`` (:func:`incremental_decoder`). Closing
the stream (the consumer gave up, its task was cancelled) takes the request out of the batch. At
most ``max_batch`` requests generate at once and ``max_queue`` more wait; beyond that
:class:`EngineBusy` is raised. An idle engine wakes no thread (its generation loop is paused).
:meth:`LocalEngine.count_tokens` gives the bot the real length of a prompt, so history is
trimmed by the tokenizer, not by an estimate.

A model without a chat template gets a subclass overriding two hooks: :meth:`format_prompt`
(messages -> prompt text) and :meth:`clean_output` (decoded text -> the answer users see).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engines.base import ChatMessage, Engine, GenerationRequest, Readiness, Usage
from engines.errors import EngineBusy, EngineError, EngineNotReady, EngineUnavailable
from engines.local_batching import (
    SHUTTING_DOWN,
    STOPPED,
    Batcher,
    BatchStats,
    Refused,
    Sampling,
    Ticket,
)
from engines.local_errors import (
    MissingModelFolder,
    NoChatTemplate,
    describe_load_error,
    short_message,
)

if TYPE_CHECKING:
    from engines.catalog import ModelSpec

__all__ = ["ChatMLEngine", "LocalEngine", "incremental_decoder"]

log = logging.getLogger(__name__)

#: the sampling temperature of the batch when a request does not say (requests always do)
DEFAULT_TEMPERATURE = 0.2
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE``)."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


class LocalEngine(Engine):
    """A causal language model from transformers, prompted through its chat template."""

    scheme = "hf"
    loads_weights = True
    #: end-of-turn markers besides the checkpoint's EOS: as tokens they stop generation, and
    #: as text (a tokenizer that lacks them) they end the answer
    stop_markers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        spec: ModelSpec,
        *,
        max_batch: int = 32,
        max_queue: int = 64,
        poll_interval: float = 1.0,
    ) -> None:
        if max_batch < 1 or max_queue < 0:
            raise ValueError("max_batch must be positive and max_queue not negative")
        super().__init__(model=spec.target, context_window=spec.context_window)
        self.spec = spec
        self.max_new_tokens = spec.max_new_tokens
        self.max_batch = max_batch
        self.max_queue = max_queue
        #: seconds between checks, while requests are in flight (never when idle), that the
        #: generation thread is still alive (a crash is delivered; this is the safety net)
        self.poll_interval = poll_interval
        self._tokenizer: Any = None
        self._model: Any = None
        self._batcher: Batcher | None = None
        #: token ids that end an answer (the checkpoint's EOS and stop_markers; set by start)
        self.eos_token_ids: tuple[int, ...] = ()
        self._loaded = asyncio.Event()
        self._closed = threading.Event()  # set by aclose(); a late load then stops itself
        self._restarting = asyncio.Lock()
        self._admitted = 0  # requests inside stream()
        self._waiting = 0  # ... of which have no token yet

    # -- what the bot reads -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Requests waiting for the model (loading, or queued behind a full batch)."""
        return self._waiting

    @property
    def stats(self) -> BatchStats:
        """Batching counters (peak batch, tokens generated); zero before the model is loaded."""
        return self._batcher.stats if self._batcher is not None else BatchStats()

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (None before start)."""
        return self._tokenizer

    @property
    def hf_model(self) -> Any:
        """The loaded transformers model (None before start)."""
        return self._model

    @property
    def generation_config(self) -> Any:
        """The generation config requests start from (None before start), for benchmarks that
        drive transformers' manager with the engine's own settings."""
        return self._batcher.generation_config if self._batcher is not None else None

    # -- the two hooks for models without a chat template -----------------------------------------

    def format_prompt(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text for ``messages``, ending where the assistant's answer begins."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        text = self._tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def clean_output(self, text: str) -> str:
        """The answer users see, given the decoded text so far (it must only cut or trim)."""
        return text

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int | None:
        """The prompt's real length: ``format_prompt`` tokenized (None until the model is ready)."""
        if self._tokenizer is None or self._readiness.state != "ready":
            return None
        try:
            return len(self._encode(messages))
        except Exception:  # a prompt that cannot be built: the request reports it
            return None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the tokenizer and model in a worker thread, then start the batch thread."""
        if self._batcher is not None:
            return
        self._readiness = Readiness(state="loading")
        try:
            await asyncio.to_thread(self._load)
        except Exception as exc:
            if self._closed.is_set():
                self._readiness = Readiness(state="failed", detail="the engine was closed")
            else:
                detail = describe_load_error(exc, target=self.spec.target, offline=offline())
                log.warning("could not load %s: %s", self.spec.ref, detail, exc_info=True)
                self._readiness = Readiness(state="failed", detail=detail)
            await asyncio.to_thread(self._release)
        except asyncio.CancelledError:
            self._readiness = Readiness(state="failed", detail="loading was cancelled")
            raise
        else:
            self._readiness = Readiness(state="ready")
        finally:
            self._loaded.set()

    async def aclose(self) -> None:
        """Stop generating (requests in flight fail) and free the model's memory."""
        self._closed.set()
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await asyncio.to_thread(batcher.stop)
            batcher.fail_all(SHUTTING_DOWN)  # whatever the stopped manager did not fail
        if self._readiness.state != "failed":
            self._readiness = Readiness(state="failed", detail="the engine was closed")
        await asyncio.to_thread(self._release)  # gc of a large model takes a while
        self._loaded.set()

    def _release(self) -> None:
        if self._model is None and self._tokenizer is None:
            return
        self._model = self._tokenizer = None
        gc.collect()  # models hold reference cycles; free their memory now
        torch = sys.modules.get("torch")  # loaded with the model; never imported here
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _load(self) -> None:
        """Load everything (a worker thread); raises whatever the loaders raise."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target = self.spec.target
        local = Path(target).expanduser()
        looks_local = target.startswith(("/", ".", "~")) or local.is_dir()
        if looks_local and not (local / "config.json").is_file():
            what = "no config.json in" if local.is_dir() else "no model folder at"
            raise MissingModelFolder(f"{what} {target}")
        source = str(local) if looks_local else target
        options: dict[str, Any] = {"local_files_only": looks_local or offline()}
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        if self._uses_chat_template() and not getattr(tokenizer, "chat_template", None):
            raise NoChatTemplate(target)
        if importlib.util.find_spec("accelerate") is not None:
            options["device_map"] = "auto"
        if self.spec.quantization:
            options["quantization_config"] = _quantization_config(self.spec.quantization)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype="auto", **options)
        model.eval()
        generation_config = copy.deepcopy(model.generation_config)
        generation_config.do_sample = True  # per request: near-greedy at temperature ~0
        generation_config.temperature = DEFAULT_TEMPERATURE
        generation_config.max_new_tokens = self.max_new_tokens
        self._tokenizer, self._model = tokenizer, model
        self.eos_token_ids = self._stop_token_ids(generation_config)
        window = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        if isinstance(window, int) and window > 0:
            self.context_window = min(self.spec.context_window, window)
        if self._closed.is_set():
            raise RuntimeError("the engine was closed while loading")
        batcher = Batcher(
            model, generation_config, max_batch=self.max_batch, watch_interval=self.poll_interval
        )
        batcher.start()
        self._batcher = batcher
        if self._closed.is_set():  # aclose() ran meanwhile and saw no batcher: stop it here
            self._batcher = None
            batcher.stop()

    def _uses_chat_template(self) -> bool:
        return type(self).format_prompt is LocalEngine.format_prompt

    def _stop_token_ids(self, generation_config: Any) -> tuple[int, ...]:
        ids: list[int] = []
        configured = generation_config.eos_token_id
        ids += configured if isinstance(configured, list) else [configured]
        ids.append(self._tokenizer.eos_token_id)
        unknown = self._tokenizer.unk_token_id
        for marker in self.stop_markers:
            token = self._tokenizer.convert_tokens_to_ids(marker)
            if isinstance(token, int) and token != unknown:
                ids.append(token)
        return tuple(dict.fromkeys(i for i in ids if isinstance(i, int) and i >= 0))

    # -- generation -------------------------------------------------------------------------------

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        if self._admitted >= self.max_batch + self.max_queue:
            raise EngineBusy(
                f"The local model {self.spec.name} is busy with {self._admitted} requests; "
                "try again in a moment."
            )
        self._admitted += 1
        self._waiting += 1
        waiting = True
        batcher: Batcher | None = None
        ticket: Ticket | None = None
        try:
            await self._loaded.wait()
            batcher = self._batcher
            if batcher is None or self._readiness.state != "ready":
                raise EngineNotReady(
                    f"The local model {self.spec.name} could not be loaded: "
                    f"{self._readiness.detail or self._readiness.state}."
                )
            try:
                prompt_ids = await asyncio.to_thread(self._encode, request.messages)
            except Exception as exc:  # a template that rejects a role, a broken hook
                log.warning("could not build the prompt for %s", self.spec.ref, exc_info=True)
                raise EngineUnavailable(
                    f"Could not build the prompt for {self.spec.name}: {short_message(exc)}"
                ) from exc
            usage.prompt_tokens = len(prompt_ids)
            ticket = await self._submit(batcher, prompt_ids, self._sampling(request, prompt_ids))
            decode = incremental_decoder(self._tokenizer)
            text = shown = ""
            decoded = 0  # tokens turned into text so far
            while True:
                output = await ticket.next()
                if waiting and (output.tokens or output.finished):
                    waiting = False
                    self._waiting -= 1
                if output.error is not None:
                    raise self._generation_error(output.error)
                tokens = output.tokens
                usage.completion_tokens = len(tokens)
                if len(tokens) > decoded:
                    text += decode(tokens[decoded:])
                    decoded = len(tokens)
                stopped = any(marker in text for marker in self.stop_markers)
                answer = self.clean_output(text)
                if len(answer) > len(shown) and answer.startswith(shown):
                    yield answer[len(shown) :]
                    shown = answer
                if output.finished or stopped:
                    return
        finally:
            self._admitted -= 1
            if waiting:
                self._waiting -= 1
            if ticket is not None and not ticket.finished and batcher is not None:
                batcher.cancel(ticket)

    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        prompt = self.format_prompt(messages)
        ids = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return [int(i) for i in ids]

    def _sampling(self, request: GenerationRequest, prompt_ids: list[int]) -> Sampling:
        room = self.context_window - len(prompt_ids)
        if room < 1:
            raise EngineError(
                f"The conversation is {len(prompt_ids):,} tokens, more than the "
                f"{self.context_window:,}-token context of {self.spec.name}. "
                "Start a new session or pick a model with a longer context."
            )
        return Sampling(
            max_new_tokens=max(1, min(request.max_tokens, self.max_new_tokens, room)),
            temperature=request.temperature,
            eos_token_ids=self.eos_token_ids,
        )

    async def _submit(self, batcher: Batcher, prompt_ids: list[int], sampling: Sampling) -> Ticket:
        refused_by: int | None = None  # a thread that refused: still stopping after a failure
        for _ in range(2):
            if not batcher.running or refused_by is not None:
                async with self._restarting:  # one restart, however many requests noticed
                    await asyncio.to_thread(batcher.ensure_running, refused_by)
            try:
                return batcher.submit(prompt_ids, sampling)
            except Refused:
                log.warning("the generation thread refused a request; restarting it")
                refused_by = batcher.epoch
            except Exception as exc:
                log.exception("submitting to the generation thread of %s failed", self.spec.ref)
                raise EngineUnavailable(
                    f"The local model {self.spec.name} could not take the request. Try again."
                ) from exc
        raise EngineUnavailable("The local model could not start generating. Try again.")

    def _generation_error(self, error: str) -> EngineError:
        if error == SHUTTING_DOWN:
            return EngineUnavailable(f"The local model {self.spec.name} is shutting down.")
        if error == STOPPED:
            return EngineUnavailable("The local model stopped generating unexpectedly. Try again.")
        log.error("generation failed in %s: %s", self.spec.ref, error)
        if "out of memory" in error.lower():
            return EngineUnavailable(
                f"The local model {self.spec.name} ran out of memory while answering. "
                "Try again with a shorter conversation, or when fewer people are waiting."
            )
        return EngineUnavailable(
            f"The local model {self.spec.name} failed while answering. Try again; "
            "the server log has the details."
        )


class ChatMLEngine(LocalEngine):
    """ChatML prompts built by hand (``<|im_start|>role\\n...<|im_end|>``), for Hermes and the
    other models trained on ChatML, whether or not their tokenizer carries a chat template."""

    scheme = "hf-chatml"
    stop_markers = ("<|im_end|>", "<|im_start|>")

    def format_prompt(self, messages: Sequence[ChatMessage]) -> str:
        turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
        return f"{self._tokenizer.bos_token or ''}{turns}<|im_start|>assistant\n"

    def clean_output(self, text: str) -> str:
        for marker in self.stop_markers:
            text = text.split(marker, 1)[0]
        for marker in self.stop_markers:  # hold back a marker that may be arriving
            for size in range(min(len(marker) - 1, len(text)), 0, -1):
                if marker.startswith(text[-size:]):
                    return text[:-size]
        return text


def incremental_decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    """A function that takes the next generated token ids and returns the text they complete.

    With a ``tokenizers`` backend (every fast tokenizer) it is that library's ``DecodeStream``:
    constant work per token, and the bytes of a character split across tokens are held back
    until it is whole, so no chunk carries a U+FFFD. A tokenizer without one (a Python-only
    tokenizer, rare) decodes all the tokens each time and returns what grew.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(skip_special_tokens=True)

        def step(ids: list[int]) -> str:
            return stream.step(backend, ids) or ""

        return step

    seen: list[int] = []
    shown = ""

    def redecode(ids: list[int]) -> str:
        nonlocal shown
        seen.extend(ids)
        text = str(tokenizer.decode(seen, skip_special_tokens=True)).rstrip("\ufffd")
        grown = text[len(shown) :] if text.startswith(shown) else ""
        shown = text if grown else shown
        return grown

    return redecode


def _quantization_config(kind: str) -> Any:
    import transformers

    bits_and_bytes: Any = transformers.BitsAndBytesConfig
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModuleNotFoundError("No module named 'bitsandbytes'", name="bitsandbytes")
    if kind == "8bit":
        return bits_and_bytes(load_in_8bit=True)
    return bits_and_bytes(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"
    )
