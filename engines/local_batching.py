"""Continuous batching for the local engine, on transformers' own machinery.

:class:`Batcher` drives transformers' ``ContinuousBatchingManager`` (a paged KV cache and one
generation thread): a request joins the running batch as soon as it arrives and leaves when it
finishes, so aggregate throughput grows with concurrency.

Delivery is the manager's own: :meth:`Batcher.submit` registers a result handler
(``register_result_handler``) for the request *before* adding it, and after every step the
generation thread hands that step's outputs to the event loop in one ``call_soon_threadsafe``.
The handler runs on the loop, keeps the counters and leaves the output on the request's
:class:`Ticket`, waking its stream: every token with up to 8 requests in flight, every few
tokens beyond (:data:`STREAMS_PER_TOKEN`; the first and the last are never held back). No
thread of ours reads, polls or routes outputs; while requests are in flight one timer a second
checks that the generation thread is alive (a crash is delivered by the manager; the timer is
the net).

Idle: the manager's loop waits for work with a 0.1 s timeout, ten wake-ups a second for as long
as the model is loaded. While no request is in flight, :class:`_Parking` holds the manager's own
``pause()`` instead, so the generation thread sleeps on a condition and nothing of the engine
wakes up (0 % CPU); the next request lifts the pause before it is added. Its thread only ever
blocks (on that condition or on the pause), it never polls.

A crash of the generation thread fails every request in flight (the manager delivers each an
output with ``error`` set); the next :meth:`Batcher.ensure_running` starts a fresh manager.
torch and transformers are imported by the methods that run in worker threads, never at import.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import logging
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SHUTTING_DOWN",
    "STOPPED",
    "BatchStats",
    "Batcher",
    "Output",
    "Refused",
    "Sampling",
    "Ticket",
    "batching_config",
    "decoding_temperature",
]

log = logging.getLogger(__name__)

#: sampling temperatures at or below this decode (near-)greedily
GREEDY_BELOW = 1e-3
#: the temperature used for them: the top token's odds over one 0.01 logit behind are e^100
_GREEDY_TEMPERATURE = 1e-4
#: on a CPU (no free-memory probe), the KV cache gets at most this many bytes
CPU_KV_CACHE_BYTES = 2 * 1024**3
#: tokens per forward pass on a CPU: long prompts are prefilled in chunks of this size
CPU_BATCH_TOKENS = 512
#: the error of a request whose generation thread is gone without a word (the watchdog's)
STOPPED = "the generation thread stopped"
#: the error of a request in flight when the engine closes
SHUTTING_DOWN = "shutting down"
#: under load a stream is woken every few tokens, not every one: one more token per wake-up for
#: every this many requests in flight (1 up to 8, 2 up to 16, 4 at 32). The per-token work of
#: the event loop competes with the generation thread for the GIL; a chat shows text a few
#: times a second at most, and the first token and the last are never held back
STREAMS_PER_TOKEN = 8
#: result handlers of cancelled requests kept (they swallow the outputs of the step or two the
#: manager still runs them); older ones are unregistered, their request long gone
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


@dataclass(slots=True, kw_only=True)  # not frozen: a frozen one costs a microsecond per token
class Output:
    """A request's progress: every token generated so far, and whether it is over."""

    tokens: list[int]
    finished: bool
    error: str | None = None


@dataclass(slots=True)
class BatchStats:
    """Counters for tests, benchmarks and metrics (kept on the event loop by the handlers)."""

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
    #: whether the generation loop is paused right now because nothing is in flight (written by
    #: the parking thread)
    parked: bool = False


class Ticket:
    """One submitted request: its id and where its newest output waits (event loop only).

    Each output holds every token so far, so only the newest matters: one slot, and one future
    while the stream waits. That is all a token costs here; an asyncio queue and a timeout per
    wait cost a tenth of the throughput of a small model at 32 streams.
    """

    __slots__ = (
        "_generating",
        "_newest",
        "_open",
        "_seen",
        "_waiter",
        "_woken_at",
        "epoch",
        "finished",
        "request_id",
    )

    def __init__(self, request_id: str, epoch: int) -> None:
        self.request_id = request_id
        self.epoch = epoch
        #: the output taken last was the final one
        self.finished = False
        self._newest: Output | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._open = True  # counted as in flight (until finished or cancelled)
        self._seen = 0  # tokens counted in the stats
        self._woken_at = 0  # tokens in the output the stream took last
        self._generating = False

    async def next(self) -> Output:
        """The newest output (waits for one)."""
        while (output := self._newest) is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self._newest = None
        self._woken_at = len(output.tokens)
        self.finished = output.finished
        return output

    def _put(self, output: Output, *, wake: bool = True) -> None:
        """Keep ``output`` as the newest; wake the waiting stream unless told to let it sleep."""
        self._newest = output
        waiter = self._waiter
        if wake and waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Parking:
    """Holds the manager's pause while no request is in flight, so its loop sleeps.

    Its thread waits on a condition for the engine to go idle, then enters
    ``manager.pause()`` (which returns once the loop is parked) and waits there for the next
    request. The pause is entered and left by this one thread, as the manager requires.
    """

    def __init__(self, manager: Any, stats: BatchStats) -> None:
        self._manager = manager
        self._stats = stats
        self._changed = threading.Condition()
        self._active = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="local-engine-park", daemon=True)
        self._thread.start()

    def busy(self) -> None:
        """A request is about to be added: lift the pause (returns at once)."""
        with self._changed:
            self._active += 1
            if self._active == 1:
                self._changed.notify_all()

    def done(self) -> None:
        """A request finished or was cancelled."""
        with self._changed:
            self._active -= 1
            if self._active == 0:
                self._changed.notify_all()

    def close(self, timeout: float) -> None:
        """Leave the pause for good (before the manager is stopped: a paused loop cannot stop)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        changed = self._changed
        while True:
            with changed:
                changed.wait_for(lambda: self._closing or self._active == 0)
                if self._closing:
                    return
            try:
                with self._manager.pause():
                    self._stats.parked = True
                    with changed:
                        changed.wait_for(lambda: self._closing or self._active > 0)
                    self._stats.parked = False
            except RuntimeError:  # the generation loop is gone (crashed or stopped)
                self._stats.parked = False
                return
            except Exception:
                log.exception("could not pause the idle generation loop; it keeps polling")
                return


class Batcher:
    """Continuous batching over one loaded model; at most ``max_batch`` requests per step."""

    def __init__(
        self, model: Any, generation_config: Any, *, max_batch: int, watch_interval: float = 1.0
    ) -> None:
        self._model = model
        #: what every request starts from (the manager's generation config)
        self.generation_config = generation_config
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._manager: Any = None
        self._parking: _Parking | None = None
        self._epoch = 0
        self._tickets: dict[str, Ticket] = {}  # in flight (event loop only)
        self._cancelled: OrderedDict[str, Any] = OrderedDict()  # request id -> its manager
        self._ids = itertools.count()
        self._closing = threading.Event()
        #: seconds between the watchdog's checks, while requests are in flight, that their
        #: generation thread is alive (a crash is delivered by the manager; this is the net)
        self.watch_interval = watch_interval
        self._watchdog: asyncio.TimerHandle | None = None

    # -- lifecycle (worker threads) ---------------------------------------------------------------

    def start(self) -> None:
        """Start the generation thread (blocking: call it in a worker thread)."""
        self._swap_manager()
        _running.add(self)

    def ensure_running(self, refused_by: int | None = None) -> None:
        """Start a fresh generation thread if the last one died (blocking); with
        ``refused_by`` (the :attr:`epoch` of a thread that refused a request), also when that
        thread is still winding down after a failure, unless another restart came first."""
        if not self.running or refused_by == self._epoch:
            log.warning("the local model's generation thread had stopped; starting a new one")
            self._swap_manager()

    @property
    def epoch(self) -> int:
        """Which generation thread this is (one more at each start)."""
        return self._epoch

    def stop(self, timeout: float = 10.0) -> None:
        """Stop generating (blocking); requests in flight get an output with ``error`` set.

        The manager fails what it still holds; :meth:`fail_all` (on the loop) ends the rest.
        """
        self._closing.set()
        _running.discard(self)
        manager, self._manager = self._manager, None  # first: submit() reads it first
        parking, self._parking = self._parking, None
        if parking is not None:
            parking.close(timeout)
        if manager is not None:
            manager.stop(block=True, timeout=timeout, hard_stop=True)
            manager.destroy()

    def fail_all(self, error: str = SHUTTING_DOWN) -> None:
        """End every request still in flight with ``error`` (event loop; after :meth:`stop`)."""
        for ticket in list(self._tickets.values()):
            self._fail(ticket, error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

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
        manager, parking, epoch = self._manager, self._parking, self._epoch
        if manager is None or parking is None or self._closing.is_set():
            raise Refused("the batcher is not running")
        request_id = f"ct-{next(self._ids)}"
        ticket = Ticket(request_id, epoch)
        # before add_request: an output that finds no handler goes to a queue nobody reads
        manager.register_result_handler(request_id, functools.partial(self._deliver, ticket))
        self._tickets[request_id] = ticket
        parking.busy()
        added = None
        try:
            added = manager.add_request(
                list(prompt_ids),
                request_id=request_id,
                max_new_tokens=sampling.max_new_tokens,
                streaming=True,
                eos_token_id=list(sampling.eos_token_ids) or -1,
                temperature=decoding_temperature(sampling.temperature),
            )
        finally:
            if added is None:
                self._tickets.pop(request_id, None)
                self._settle(ticket)
                _unregister(manager, request_id)
        if added is None:
            raise Refused("the generation thread is stopping")
        self.stats.submitted += 1
        if self._watchdog is None:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self.watch_interval, self._watch)
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Take a request out of the batch: its generation stops within a step."""
        if self._tickets.pop(ticket.request_id, None) is None:
            return
        self._settle(ticket)
        manager = self._manager
        if manager is None or ticket.epoch != self._epoch:
            return
        manager.cancel_request(ticket.request_id)
        # its handler stays to swallow the last outputs (a cancelled request gets no final one,
        # so the manager never drops it): forget the oldest
        self._cancelled[ticket.request_id] = manager
        while len(self._cancelled) > _FORGET_CANCELLED_AFTER:
            request_id, owner = self._cancelled.popitem(last=False)
            _unregister(owner, request_id)

    # -- internals --------------------------------------------------------------------------------

    def _deliver(self, ticket: Ticket, result: Any) -> None:
        """The result handler: runs on the event loop, called by the manager's thread."""
        tokens: list[int] = result.generated_tokens
        finished = bool(result.is_finished())
        stats = self.stats
        stats.tokens += max(0, len(tokens) - ticket._seen)
        ticket._seen = max(ticket._seen, len(tokens))
        if finished:
            self._cancelled.pop(ticket.request_id, None)  # the manager dropped the handler
        if not ticket._open:
            return  # cancelled: counted, not delivered
        if tokens and not ticket._generating:
            ticket._generating = True
            stats.generating += 1
            stats.peak_batch = max(stats.peak_batch, stats.generating)
        error = None if result.error is None else str(result.error)
        if finished:
            self._tickets.pop(ticket.request_id, None)
            self._settle(ticket)
            if error is not None and self._closing.is_set():
                error = SHUTTING_DOWN
        interval = 1 + (len(self._tickets) - 1) // STREAMS_PER_TOKEN
        wake = finished or not ticket._woken_at or len(tokens) - ticket._woken_at >= interval
        ticket._put(Output(tokens=tokens, finished=finished, error=error), wake=wake)

    def _fail(self, ticket: Ticket, error: str) -> None:
        self._tickets.pop(ticket.request_id, None)
        self._settle(ticket)
        ticket._put(Output(tokens=[], finished=True, error=error))

    def _watch(self) -> None:
        """Fail the requests whose generation thread is gone (event loop, while busy only)."""
        self._watchdog = None
        for ticket in [t for t in self._tickets.values() if not self.alive(t)]:
            log.error("request %s lost its generation thread", ticket.request_id)
            self._fail(ticket, STOPPED)
            if ticket.epoch == self._epoch and self._manager is not None:
                self._manager.cancel_request(ticket.request_id)  # should it be alive after all
        if self._tickets:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self.watch_interval, self._watch)

    def _settle(self, ticket: Ticket) -> None:
        """The request is no longer in flight: count it out once."""
        if not ticket._open:
            return
        ticket._open = False
        if ticket._generating:
            self.stats.generating -= 1
        parking = self._parking
        if parking is not None and ticket.epoch == self._epoch:
            parking.done()

    def _swap_manager(self) -> None:
        """Replace the manager (a worker thread, while the loop may call :meth:`submit`)."""
        old, parking = self._manager, self._parking
        self._manager = None  # submit() refuses until the new one is in place
        if parking is not None:
            parking.close(10.0)
        if old is not None:  # a dead thread has failed its requests already
            old.stop(block=True, timeout=10.0, hard_stop=True)
            old.destroy()
        manager = self._model.init_continuous_batching(
            generation_config=self.generation_config,
            continuous_batching_config=batching_config(self._model, self.max_batch),
        )
        # A thread inherits "daemon" from the thread that creates it: starting the manager from
        # a daemon thread makes its generation thread one too, so that a process that exits
        # without aclose() (Ctrl-C, a crash) is not kept alive by it.
        starter = threading.Thread(target=manager.start, name="local-engine-start", daemon=True)
        starter.start()
        starter.join()
        # submit() reads the manager first: set it last, once its parking and epoch are set
        self._parking = _Parking(manager, self.stats)
        self._epoch += 1
        self._manager = manager
        self.stats.starts += 1


def decoding_temperature(temperature: float) -> float:
    """The temperature a request is sampled at: (near-)greedy ones get a tiny positive one.

    The manager samples every request of a batch the same way (``do_sample`` is per manager);
    at this temperature sampling picks the top token unless two are within a hair's breadth.
    """
    return _GREEDY_TEMPERATURE if temperature <= GREEDY_BELOW else float(temperature)


def batching_config(model: Any, max_batch: int) -> Any:
    """The manager's configuration for ``model``: at most ``max_batch`` requests per step.

    On a CPU there is no free-memory probe, so the KV cache is sized here (at most
    :data:`CPU_KV_CACHE_BYTES`); on an accelerator the manager sizes it from free memory.
    """
    from transformers import ContinuousBatchingConfig

    _route_library_logs()

    options: dict[str, Any] = {"max_requests_per_batch": max_batch}
    if model.device.type == "cpu":
        config = model.config.get_text_config()
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        per_token = 2 * config.num_hidden_layers * heads * head_dim * model.dtype.itemsize
        wanted = max_batch * int(getattr(config, "max_position_embeddings", 4096))
        tokens = min(wanted, CPU_KV_CACHE_BYTES // per_token)
        page_size = 256
        options |= {
            "page_size": page_size,
            "num_blocks": max(4, math.ceil(tokens / page_size)),
            "max_batch_tokens": CPU_BATCH_TOKENS,
        }
    return ContinuousBatchingConfig(per_request_processors=True, **options)


def _unregister(manager: Any, request_id: str) -> None:
    """Drop a request's result handler (the manager only drops it after a final output)."""
    router = getattr(manager, "output_router", None)
    handlers = getattr(router, "result_handlers", None)
    if isinstance(handlers, dict):
        with getattr(router, "_lock", contextlib.nullcontext()):
            handlers.pop(request_id, None)


def _route_library_logs() -> None:
    """Send transformers' continuous-batching log through the application's logging.

    That logger prints INFO lines to the console with a handler of its own; the bot's logging
    configuration (a file for the CLI, stderr for the service) decides instead, at WARNING.
    """
    cb_logger = logging.getLogger("ContinuousBatchingLogger")
    cb_logger.handlers.clear()
    cb_logger.propagate = True
    cb_logger.setLevel(logging.WARNING)
