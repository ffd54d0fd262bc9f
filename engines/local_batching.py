"""Continuous batching for the local engine: concurrent requests share the model, step by step.

:class:`Batcher` drives transformers' ``ContinuousBatchingManager`` (a paged KV cache and one
generation thread): a request joins the running batch as soon as it arrives and leaves when it
finishes, so aggregate throughput grows with concurrency. Outputs come back through one
:class:`Ticket` per request: a dispatcher thread reads the manager's output queue and hands each
request's newest output to its event loop with ``call_soon_threadsafe``, so nothing here blocks
the loop. A crash of the generation thread fails every request in flight (each gets an output
with ``error`` set); the next :meth:`Batcher.ensure_running` starts a fresh manager.

torch and transformers are imported by the methods that run in worker threads, never at import.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchStats", "Batcher", "Output", "Refused", "Sampling", "Ticket"]

log = logging.getLogger(__name__)

#: sampling temperatures at or below this decode (near-)greedily
GREEDY_BELOW = 1e-3
#: the temperature used for them: the top token's odds over one 0.01 logit behind are e^100
_GREEDY_TEMPERATURE = 1e-4
#: on a CPU (no free-memory probe), the KV cache gets at most this many bytes
CPU_KV_CACHE_BYTES = 2 * 1024**3
#: tokens per forward pass on a CPU: long prompts are prefilled in chunks of this size
CPU_BATCH_TOKENS = 512
_POLL_SECONDS = 0.05
_FORGET_CANCELLED_AFTER = 256
_running: weakref.WeakSet[Batcher] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit, stop the generation threads of batchers nobody stopped (a clean exit)."""
    for batcher in list(_running):
        with contextlib.suppress(Exception):
            batcher.stop(timeout=2.0)


class Refused(RuntimeError):
    """The generation thread is not taking requests (stopping, or stopped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sampling:
    """How one request is decoded."""

    max_new_tokens: int
    temperature: float
    eos_token_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """A request's progress: every token generated so far, and whether it is over."""

    tokens: list[int]
    finished: bool
    error: str | None = None


@dataclass(slots=True)
class BatchStats:
    """Counters for tests, benchmarks and metrics (written by the dispatcher thread)."""

    #: most requests seen generating at the same moment (each had a token, none had finished);
    #: one generation thread serves them all, so these were decoded in the same batches
    peak_batch: int = 0
    #: requests generating right now
    generating: int = 0
    #: requests handed to the generation thread
    submitted: int = 0
    #: tokens generated in total, those of cancelled requests included
    tokens: int = 0
    #: generation threads started (a crash makes the next request start a new one)
    starts: int = 0


class Ticket:
    """One submitted request: its id and the channel its outputs arrive on (loop side only)."""

    def __init__(self, request_id: str, epoch: int) -> None:
        self.request_id = request_id
        self.epoch = epoch
        self.finished = False
        self._outputs: asyncio.Queue[Output] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    async def next(self, within: float) -> Output | None:
        """The newest output, or None when none came within ``within`` seconds."""
        try:
            output = await asyncio.wait_for(self._outputs.get(), within)
        except TimeoutError:
            return None
        while not self._outputs.empty():  # only the newest matters: it holds every token
            output = self._outputs.get_nowait()
        self.finished = output.finished
        return output

    def _deliver(self, output: Output) -> None:  # any thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(self._outputs.put_nowait, output)


@dataclass(slots=True)
class _Route:
    ticket: Ticket
    seen: int = 0  # tokens delivered so far


class Batcher:
    """Continuous batching over one loaded model; at most ``max_batch`` requests per step."""

    def __init__(self, model: Any, generation_config: Any, *, max_batch: int) -> None:
        self._model = model
        self._generation_config = generation_config
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._manager: Any = None
        self._epoch = 0
        self._lock = threading.Lock()  # guards _routes, _cancelled, stats, _manager swaps
        self._routes: dict[str, _Route] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._ids = itertools.count()
        self._closing = threading.Event()
        self._dispatcher: threading.Thread | None = None

    # -- lifecycle (worker threads) ---------------------------------------------------------------

    def start(self) -> None:
        """Start the generation and dispatcher threads (blocking: call it in a worker thread)."""
        self._swap_manager()
        _running.add(self)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="local-engine-dispatch", daemon=True
        )
        self._dispatcher.start()

    def ensure_running(self) -> None:
        """Start a fresh generation thread if the last one died (blocking)."""
        if not self.running:
            log.warning("the local model's generation thread had stopped; starting a new one")
            self._swap_manager()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop generating; requests in flight get an output with ``error`` set (blocking)."""
        self._closing.set()
        _running.discard(self)
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.stop(block=True, timeout=timeout, hard_stop=True)
            self._drain(manager)
            manager.destroy()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
        with self._lock:
            routes, self._routes = list(self._routes.values()), {}
        for route in routes:
            route.ticket._deliver(Output(tokens=[], finished=True, error="shutting down"))

    @property
    def running(self) -> bool:
        manager = self._manager
        return manager is not None and bool(manager.is_running())

    def alive(self, ticket: Ticket) -> bool:
        """Whether the generation thread serving ``ticket`` can still answer it."""
        return ticket.epoch == self._epoch and self.running

    # -- requests (event loop thread) -------------------------------------------------------------

    def submit(self, prompt_ids: list[int], sampling: Sampling) -> Ticket:
        """Queue a request; raises :class:`Refused` when the generation thread is stopping."""
        request_id = f"ct-{next(self._ids)}"
        with self._lock:
            manager, epoch = self._manager, self._epoch
            if manager is None or self._closing.is_set():
                raise Refused("the batcher is not running")
            ticket = Ticket(request_id, epoch)
            self._routes[request_id] = _Route(ticket)
        temperature = sampling.temperature
        if temperature <= GREEDY_BELOW:
            temperature = _GREEDY_TEMPERATURE
        added = None
        try:
            added = manager.add_request(
                list(prompt_ids),
                request_id=request_id,
                max_new_tokens=sampling.max_new_tokens,
                streaming=True,
                eos_token_id=list(sampling.eos_token_ids) or -1,
                temperature=float(temperature),
            )
        finally:
            with self._lock:
                if added is None:
                    self._routes.pop(request_id, None)
                else:
                    self.stats.submitted += 1
        if added is None:
            raise Refused("the generation thread is stopping")
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Take a request out of the batch: its generation stops within a step."""
        with self._lock:
            route = self._routes.pop(ticket.request_id, None)
            if route is None:
                return
            if route.seen:
                self.stats.generating -= 1
            self._cancelled[ticket.request_id] = None
            while len(self._cancelled) > _FORGET_CANCELLED_AFTER:
                self._cancelled.popitem(last=False)
        manager = self._manager
        if manager is not None:
            manager.cancel_request(ticket.request_id)

    # -- internals --------------------------------------------------------------------------------

    def _swap_manager(self) -> None:
        old = self._manager
        if old is not None:
            old.stop(block=True, timeout=10.0, hard_stop=True)
            self._drain(old)  # deliver the failures of the dead thread before forgetting it
            old.destroy()
        manager = self._model.init_continuous_batching(
            generation_config=self._generation_config,
            continuous_batching_config=self._batching_config(),
        )
        # A thread inherits "daemon" from the thread that creates it: starting the manager from
        # a daemon thread makes its generation thread one too, so that a process that exits
        # without aclose() (Ctrl-C, a crash) is not kept alive by it.
        starter = threading.Thread(target=manager.start, name="local-engine-start", daemon=True)
        starter.start()
        starter.join()
        with self._lock:
            self._manager = manager
            self._epoch += 1
            self.stats.starts += 1

    def _batching_config(self) -> Any:
        from transformers import ContinuousBatchingConfig

        _route_library_logs()

        options: dict[str, Any] = {"max_requests_per_batch": self.max_batch}
        if self._model.device.type == "cpu":  # no free-memory probe: size the cache ourselves
            config = self._model.config.get_text_config()
            heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
            head_dim = getattr(config, "head_dim", None) or (
                config.hidden_size // config.num_attention_heads
            )
            itemsize = self._model.dtype.itemsize
            per_token = 2 * config.num_hidden_layers * heads * head_dim * itemsize
            wanted = self.max_batch * int(getattr(config, "max_position_embeddings", 4096))
            tokens = min(wanted, CPU_KV_CACHE_BYTES // per_token)
            page_size = 256
            options |= {
                "page_size": page_size,
                "num_blocks": max(4, math.ceil(tokens / page_size)),
                "max_batch_tokens": CPU_BATCH_TOKENS,
            }
        return ContinuousBatchingConfig(per_request_processors=True, **options)

    def _dispatch(self) -> None:
        """Route outputs to their tickets until stopped (the dispatcher thread)."""
        while not self._closing.is_set():
            manager = self._manager
            if manager is None:
                self._closing.wait(_POLL_SECONDS)
                continue
            try:
                first = manager.get_result(timeout=_POLL_SECONDS)
                if first is None:
                    if not manager.is_running():  # get_result returns at once for a dead thread
                        self._closing.wait(_POLL_SECONDS)
                    continue
                batch = [first]
                while (more := manager.get_result(timeout=0)) is not None:
                    batch.append(more)
                self._route(batch)
            except Exception:  # never let the dispatcher die: requests would wait forever
                log.exception("local engine dispatcher failed; continuing")

    def _drain(self, manager: Any) -> None:
        batch = []
        while (output := manager.get_result(timeout=0)) is not None:
            batch.append(output)
        self._route(batch)

    def _route(self, batch: list[Any]) -> None:
        """Account for a batch of manager outputs (in arrival order) and deliver the newest."""
        newest: dict[str, tuple[Ticket, Output]] = {}
        with self._lock:
            for result in batch:
                rid = result.request_id
                finished = bool(result.is_finished())
                route = self._routes.get(rid)
                if route is None:  # cancelled: count its last tokens, deliver nothing
                    self.stats.tokens += 1 if rid in self._cancelled else 0
                    continue
                tokens = list(result.generated_tokens)
                if tokens and not route.seen:
                    self.stats.generating += 1
                    self.stats.peak_batch = max(self.stats.peak_batch, self.stats.generating)
                self.stats.tokens += max(0, len(tokens) - route.seen)
                if finished:
                    if route.seen or tokens:
                        self.stats.generating -= 1
                    del self._routes[rid]
                route.seen = max(route.seen, len(tokens))
                error = str(result.error) if result.error is not None else None
                newest[rid] = (route.ticket, Output(tokens=tokens, finished=finished, error=error))
        for ticket, output in newest.values():
            ticket._deliver(output)


def _route_library_logs() -> None:
    """Send transformers' continuous-batching log through the application's logging.

    That logger prints INFO lines to the console with a handler of its own; the bot's logging
    configuration (a file for the CLI, stderr for the service) decides instead, at WARNING.
    """
    cb_logger = logging.getLogger("ContinuousBatchingLogger")
    cb_logger.handlers.clear()
    cb_logger.propagate = True
    cb_logger.setLevel(logging.WARNING)
