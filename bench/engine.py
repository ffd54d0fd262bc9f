"""Local engine throughput against transformers' own machinery on the same model, and idle cost.

In one run, on one model, every request generating exactly ``--tokens`` tokens
(end-of-sequence ignored), at 1, 4, 16 and 32 concurrent requests:

- **engine**: the project's :class:`engines.local.LocalEngine`, one ``stream()`` per request
  (transformers' continuous-batching manager behind it, tokens pushed onto the event loop by
  its result handlers, text by ``DecodeStream``);
- **manager**: transformers' ``ContinuousBatchingManager`` driven directly with the engine's
  own generation and batching configs: ``add_request(streaming=True)``, every output read back
  with the blocking ``get_result`` in the caller's thread (tokens only: no text, no asyncio);
- **served**: the same manager streamed the way ``transformers serve`` does it: a result
  handler per request, ``DecodeStream`` text onto an asyncio queue, one task per request;
- **generate**: static-batch ``model.generate`` of the same prompt repeated (no continuous
  batching: the ceiling for identical requests that start and end together).

A round runs the engine (loaded afresh), then the manager and generate on the engine's model
once it is closed, so each has the accelerator's memory to itself and drift hits all alike. It
prints the median tokens/s of ``--rounds`` rounds, the engine's ratio to manager and served
(the median of each round's ratio; goal: >= 1.0x at every concurrency), each one's gain over
one request (goal on a GPU: the engine >= 8x at 16 concurrent), the engine's single-stream
decode speed, and the idle cost of a loaded engine: CPU time of the whole process over
``--idle`` seconds with nothing to do (goal: 0 %) and how often the engine's threads woke.

    python -m bench.engine --device cpu             # the tiny trained test model
    python -m bench.engine --device cuda            # a random-weight Llama 3.2 1B, bf16
    python -m bench.engine --model PATH             # any local model folder

On CUDA the single-stream decode speed is also shown as a fraction of the memory-bandwidth
bound (weight bytes read per token / bandwidth; ``--bandwidth`` in GB/s, by default 4800 for
an H200, 3350 for an H100, 2039 for an A100, 1008 for an RTX 4090). Nothing is downloaded: the
models are built from configs. On a small CPU keep ``--threads`` below the core count: OpenMP's
workers spin between steps and starve the event loop and the generation thread alike (on 2
cores, 2 threads make every mode erratic, ``generate`` included).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines import ChatMessage, GenerationRequest, ModelSpec, Usage
from engines.local import LocalEngine
from engines.local_batching import batching_config, decoding_temperature
from tests.fakes.tiny_model import CHATML_TEMPLATE, build_tiny_model

CONCURRENCY = (1, 4, 16, 32)
#: GB/s of HBM, by a substring of torch.cuda.get_device_name()
BANDWIDTH_GBPS = {"H200": 4800.0, "H100": 3350.0, "A100": 2039.0, "4090": 1008.0, "L40S": 864.0}
#: seconds any one run may take before the benchmark gives up (a hang, not a slow machine)
LIMIT = 600.0
#: Llama 3.2 1B (1.24 B parameters with tied embeddings)
LLAMA_1B = {
    "vocab_size": 128_256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500_000.0,
    "tie_word_embeddings": True,
}
REQUEST = (
    ChatMessage(role="system", content="You are a careful programmer. Answer with one block."),
    ChatMessage(role="user", content="Write a function that parses a CSV line into fields."),
)
Rate = tuple[int, float]  # (tokens, seconds)
MODES = ("engine", "manager", "served", "generate", "streams")


def build_random_llama(
    path: Path, *, device: str = "cuda", shape: dict[str, Any] | None = None
) -> Path:
    """A random-weight Llama (3.2 1B by default) in bf16, saved with a word-level tokenizer."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    library: Any = transformers  # typed loosely; keep it to Any

    shape = shape or LLAMA_1B
    special = ["<unk>", "<|im_start|>", "<|im_end|>"]
    size = int(shape["vocab_size"])
    vocab = {token: i for i, token in enumerate(special)}
    vocab |= {f"w{i}": i for i in range(len(special), size)}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = library.PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHATML_TEMPLATE,
    )
    config = library.LlamaConfig(**shape, bos_token_id=None, eos_token_id=2)
    with torch.device(device):
        model = library.LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return path


# -- the engine -----------------------------------------------------------------------------------


async def one(engine: LocalEngine, tokens: int) -> tuple[int, float]:
    """Run one request; returns (tokens generated, decode tokens/s after the first token)."""
    request = GenerationRequest(messages=REQUEST, temperature=0.0, max_tokens=tokens)
    usage = Usage()
    first = last = 0.0
    async for _ in engine.stream(request, usage):
        last = time.perf_counter()
        first = first or last
    count = usage.completion_tokens or 0
    decode = (count - 1) / (last - first) if count > 1 and last > first else float("nan")
    return count, decode


async def engine_round(engine: LocalEngine, tokens: int, concurrency: int) -> tuple[Rate, float]:
    """``concurrency`` requests at once: ((tokens, wall seconds), median per-stream decode)."""
    began = time.perf_counter()
    async with asyncio.timeout(LIMIT):
        results = await asyncio.gather(*(one(engine, tokens) for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return (sum(n for n, _ in results), wall), statistics.median(r for _, r in results)


def thread_wakeups(thread_ids: Sequence[int]) -> int | None:
    """Voluntary context switches of these threads so far (Linux /proc), or None elsewhere."""
    if not Path("/proc/self/task").is_dir():
        return None
    total = 0
    for tid in thread_ids:
        with suppress(FileNotFoundError):
            status = Path(f"/proc/self/task/{tid}/status").read_text()
            total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


async def engine_pass(path: Path, args: argparse.Namespace, *, first: bool) -> dict[str, Any]:
    """One round of the engine: load, warm up, every concurrency; the first round also measures
    single-stream decode and idle cost. Returns the figures and the model, the engine closed."""
    before = {t.native_id for t in threading.enumerate()}
    engine = LocalEngine(
        ModelSpec(name="bench", ref=f"hf:{path}", max_new_tokens=args.tokens),
        max_batch=max(CONCURRENCY),
    )
    await engine.start()
    if engine.readiness.state != "ready":
        raise SystemExit(f"the model did not load: {engine.readiness}")
    try:
        prompt = engine.tokenizer(engine.format_prompt(REQUEST), add_special_tokens=False)
        figures: dict[str, Any] = {
            "model": engine.hf_model,
            "generation_config": engine.generation_config,
            "eos": engine.eos_token_ids,
            "tokenizer": engine.tokenizer,
            "prompt": list(prompt["input_ids"]),
        }
        engine.eos_token_ids = ()  # every request generates exactly --tokens tokens
        await engine_round(engine, 8, 1)  # warm up
        await engine_round(engine, 16, max(CONCURRENCY))
        if first:
            figures["single_decode"] = statistics.median(
                [(await one(engine, args.tokens))[1] for _ in range(3)]
            )
        rates: dict[int, Rate] = {}
        streams: dict[int, float] = {}
        for concurrency in CONCURRENCY:
            rates[concurrency], streams[concurrency] = await engine_round(
                engine, args.tokens, concurrency
            )
        figures |= {"engine": rates, "streams": streams, "peak_batch": engine.stats.peak_batch}
        if first:
            figures |= await idle_cost(engine, args, before)
            figures["about"] = describe(engine.hf_model)
    finally:
        await engine.aclose()  # the model stays loaded: figures holds it
    return figures


async def idle_cost(engine: LocalEngine, args: argparse.Namespace, before: set[int | None]) -> Any:
    """CPU share of the process and wake-ups of the engine's threads over ``--idle`` seconds."""
    # idle: the generation loop pauses once nothing runs (a flag another thread sets)
    async with asyncio.timeout(LIMIT):
        while not engine.stats.parked:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # let OpenMP's worker threads stop spinning
    mine = [t.native_id for t in threading.enumerate() if t.native_id not in before]
    ids = [tid for tid in mine if tid is not None]
    woke, cpu, wall = thread_wakeups(ids), time.process_time(), time.perf_counter()
    await asyncio.sleep(args.idle)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = thread_wakeups(ids)
    woken = None if woke is None or after is None else after - woke
    return {"idle": (cpu / wall, wall, woken), "idle_threads": len(ids)}


def describe(model: Any) -> dict[str, Any]:
    """What the report says of the model: size, type, where it runs."""
    import torch

    on_cuda = model.device.type == "cuda"
    return {
        "type": model.config.model_type,
        "params": sum(p.numel() for p in model.parameters()),
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "dtype": str(model.dtype),
        "device": str(model.device),
        "name": torch.cuda.get_device_name(model.device) if on_cuda else "CPU",
    }


# -- transformers directly ------------------------------------------------------------------------


def manager_pass(figures: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[int, Rate]]:
    """transformers' manager with the engine's configs, driven two ways (one manager):

    - ``manager``: ``add_request(streaming=True)`` and every output read back with the blocking
      ``get_result`` in this thread (tokens only, no text);
    - ``served``: as ``transformers serve`` streams: a result handler per request (registered
      before the request is added) turns each new token into text with ``DecodeStream`` and
      puts it on the request's asyncio queue, which one task per request reads.
    """
    from tokenizers.decoders import DecodeStream

    model = figures["model"]
    manager = model.init_continuous_batching(
        generation_config=figures["generation_config"],
        continuous_batching_config=batching_config(model, max(CONCURRENCY)),
    )
    manager.start()
    prompt = figures["prompt"]
    backend = figures["tokenizer"].backend_tokenizer
    options = {"streaming": True, "eos_token_id": -1, "temperature": decoding_temperature(0.0)}
    ids = itertools.count()

    def blocking(tokens: int, concurrency: int) -> Rate:
        began = time.perf_counter()
        waiting = {
            manager.add_request(prompt, max_new_tokens=tokens, **options)
            for _ in range(concurrency)
        }
        total = 0
        while waiting:
            result = manager.get_result(timeout=LIMIT)
            if result is None:
                raise SystemExit("transformers' manager stopped answering")
            if result.is_finished():
                if result.error is not None:
                    raise SystemExit(f"transformers' manager failed: {result.error}")
                waiting.discard(result.request_id)
                total += len(result.generated_tokens)
        return total, time.perf_counter() - began

    async def request(tokens: int) -> int:
        request_id = f"served-{next(ids)}"
        text: asyncio.Queue[str | None] = asyncio.Queue()
        decoder = DecodeStream(skip_special_tokens=True)
        seen = 0

        def on_output(output: Any) -> None:  # on this loop, called by the manager's thread
            nonlocal seen
            for token in output.generated_tokens[seen:]:
                chunk = decoder.step(backend, token)
                if chunk is not None:
                    text.put_nowait(chunk)
            seen = len(output.generated_tokens)
            if output.error is not None:
                raise SystemExit(f"transformers' manager failed: {output.error}")
            if output.is_finished():
                text.put_nowait(None)

        manager.register_result_handler(request_id, on_output)
        manager.add_request(prompt, request_id=request_id, max_new_tokens=tokens, **options)
        while await text.get() is not None:
            pass
        return seen

    async def pushed(tokens: int, concurrency: int) -> Rate:
        began = time.perf_counter()
        async with asyncio.timeout(LIMIT):
            counts = await asyncio.gather(*(request(tokens) for _ in range(concurrency)))
        return sum(counts), time.perf_counter() - began

    loop = asyncio.new_event_loop()
    try:
        return {
            "manager": one_pass(blocking, args),
            "served": one_pass(lambda t, c: loop.run_until_complete(pushed(t, c)), args),
        }
    finally:
        loop.close()
        manager.stop(block=True, timeout=30.0)
        manager.destroy()


def generate_pass(figures: dict[str, Any], args: argparse.Namespace) -> dict[int, Rate]:
    """Static-batch ``generate``: the prompt repeated ``concurrency`` times, greedy."""
    import torch
    from transformers import GenerationConfig

    model = figures["model"]
    eos = list(figures["eos"])
    prompt = figures["prompt"]

    def run(tokens: int, concurrency: int) -> Rate:
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=tokens,
            min_new_tokens=tokens,  # end-of-sequence held off: exactly ``tokens`` each
            eos_token_id=eos or None,
            pad_token_id=eos[0] if eos else 0,
        )
        inputs = torch.tensor([prompt] * concurrency, device=model.device)
        began = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                input_ids=inputs, attention_mask=torch.ones_like(inputs), generation_config=config
            )
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - began
        return (output.shape[1] - len(prompt)) * concurrency, wall

    return one_pass(run, args)


def one_pass(run: Callable[[int, int], Rate], args: argparse.Namespace) -> dict[int, Rate]:
    """Warm ``run`` up, then run it once at every concurrency."""
    run(8, 1)
    run(16, max(CONCURRENCY))
    return {concurrency: run(args.tokens, concurrency) for concurrency in CONCURRENCY}


# -- the report -----------------------------------------------------------------------------------


Rounds = dict[str, dict[int, list[float]]]  # mode -> concurrency -> tokens/s of each round


def report(first: dict[str, Any], rounds: Rounds, args: argparse.Namespace) -> None:
    import torch

    about = first["about"]
    name, weight_bytes = about["name"], about["weight_bytes"]
    print(
        f"model {about['type']} {about['params'] / 1e6:,.1f} M params, {about['dtype']}, "
        f"{weight_bytes / 1e9:.3f} GB of weights on {about['device']} ({name}); "
        f"torch threads {torch.get_num_threads()}; prompt {len(first['prompt'])} tokens, "
        f"{args.tokens} generated per request; medians of {args.rounds} rounds"
    )
    single = first["single_decode"]
    print(f"\nengine single-stream decode: {single:,.1f} tokens/s")
    if about["device"].startswith("cuda"):
        bandwidth = args.bandwidth or next(
            (gbps for key, gbps in BANDWIDTH_GBPS.items() if key in name), 3350.0
        )
        bound = bandwidth * 1e9 / weight_bytes
        print(
            f"memory-bandwidth bound: {bound:,.0f} tokens/s ({weight_bytes / 1e9:.2f} GB read per "
            f"token at {bandwidth:,.0f} GB/s); single stream reaches {single / bound:.1%} of it"
        )
    print(f"peak batch seen by the engine: {first['peak_batch']}\n")

    median = {mode: {c: statistics.median(v) for c, v in by.items()} for mode, by in rounds.items()}

    def ratio(mode: str, c: int) -> float:
        """engine/``mode`` of each round (they ran back to back), then the median."""
        pairs = zip(rounds["engine"][c], rounds[mode][c], strict=True)
        return statistics.median(e / m for e, m in pairs)

    engine, direct, served, static = (
        median[mode] for mode in ("engine", "manager", "served", "generate")
    )
    print(
        f"{'concurrent':>10} {'engine':>9} {'manager':>9} {'eng/mgr':>7} {'served':>9} "
        f"{'eng/srv':>7} {'generate':>9} {'engine x1':>9} {'generate x1':>11} {'per-stream':>10}"
    )
    for c in CONCURRENCY:
        print(
            f"{c:>10} {engine[c]:>9,.0f} {direct[c]:>9,.0f} {ratio('manager', c):>6.2f}x "
            f"{served[c]:>9,.0f} {ratio('served', c):>6.2f}x {static[c]:>9,.0f} "
            f"{engine[c] / engine[1]:>8.1f}x {static[c] / static[1]:>10.1f}x "
            f"{median['streams'][c]:>10,.0f}"
        )
    print(
        "(aggregate tokens/s; manager: transformers' manager read with get_result; served: the "
        "same manager\n streamed as `transformers serve` does it, result handlers, DecodeStream, "
        "asyncio queues)"
    )
    share, wall, woke = first["idle"]
    wakeups = "" if woke is None else f"; its {first['idle_threads']} threads woke {woke} times"
    print(f"\nidle loaded engine: {share:.2%} of a core over {wall:.1f} s (whole process){wakeups}")


def run(args: argparse.Namespace) -> None:
    """Rounds of engine, manager and generate back to back (drift hits all three alike)."""
    import gc

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu" and not args.model:
        torch.set_num_threads(1)  # the tiny model gains nothing from more (see --threads)
    rounds: Rounds = {m: {c: [] for c in CONCURRENCY} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as scratch:
        if args.model:
            path = Path(args.model)
        elif args.device == "cuda":
            path = build_random_llama(Path(scratch) / "llama-1b")
        else:
            path = build_tiny_model(Path(scratch) / "tiny")
        first: dict[str, Any] = {}
        for number in range(args.rounds):
            figures = asyncio.run(engine_pass(path, args, first=number == 0))
            passes = {
                "engine": figures["engine"],
                **manager_pass(figures, args),
                "generate": generate_pass(figures, args),
            }
            for mode, rates in passes.items():
                for c, (tokens, seconds) in rates.items():
                    rounds[mode][c].append(tokens / seconds)
            for c, stream in figures["streams"].items():
                rounds["streams"][c].append(stream)
            if number == 0:
                first = {k: v for k, v in figures.items() if k != "model"}
            del figures, passes  # the next round loads its own copy: free this one first
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        report(first, rounds, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", help="a local model folder instead of the built-in one")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per request")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians shown)")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle measured")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (default: 1 for the tiny model, else torch's own)",
    )
    parser.add_argument("--bandwidth", type=float, default=0.0, help="GPU memory bandwidth in GB/s")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch looks: keep device_map on the CPU
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to torch")
    run(args)


if __name__ == "__main__":
    main()
