"""Local engine throughput: single-stream decode speed, and aggregate tokens/s under concurrency.

Every request goes through the real :class:`engines.local.LocalEngine` (continuous batching in
its worker thread, streaming and detokenization on the event loop) and generates exactly
``--tokens`` tokens (end-of-sequence is ignored). For 1, 4, 16 and 32 concurrent requests it
prints the aggregate tokens/s and its ratio to one request, and the median decode speed of each
stream (tokens after the first, per second after the first). Goal on a GPU: 16 concurrent
>= 8x single-stream aggregate.

    python -m bench.engine --device cpu             # the tiny trained test model
    python -m bench.engine --device cuda            # a random-weight Llama 3.2 1B, bf16
    python -m bench.engine --model PATH             # any local model folder

On CUDA the single-stream decode speed is also shown as a fraction of the memory-bandwidth
bound (weight bytes read per token / bandwidth; ``--bandwidth`` in GB/s, by default 3350 for
an H100 SXM and 4800 for an H200). Nothing is downloaded: the models are built from configs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines import ChatMessage, GenerationRequest, ModelSpec, Usage
from engines.local import LocalEngine
from tests.fakes.tiny_model import CHATML_TEMPLATE, build_tiny_model

CONCURRENCY = (1, 4, 16, 32)
BANDWIDTH_GBPS = {"H200": 4800.0, "H100": 3350.0}
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


async def run(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as scratch:
        if args.model:
            path = Path(args.model)
        elif args.device == "cuda":
            path = build_random_llama(Path(scratch) / "llama-1b")
        else:
            path = build_tiny_model(Path(scratch) / "tiny")
        engine = LocalEngine(
            ModelSpec(name="bench", ref=f"hf:{path}", max_new_tokens=args.tokens),
            max_batch=max(CONCURRENCY),
        )
        await engine.start()
        if engine.readiness.state != "ready":
            raise SystemExit(f"the model did not load: {engine.readiness}")
        try:
            await report(engine, args)
        finally:
            await engine.aclose()


async def report(engine: LocalEngine, args: argparse.Namespace) -> None:
    import torch

    model: Any = engine.hf_model
    engine.eos_token_ids = ()  # every request generates exactly --tokens tokens
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    device = str(model.device)
    name = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "CPU"
    print(
        f"model {model.config.model_type} {params / 1e6:,.1f} M params, {model.dtype}, "
        f"{weight_bytes / 1e9:.2f} GB of weights on {device} ({name}); "
        f"torch threads {torch.get_num_threads()}; {args.tokens} tokens per request"
    )
    await one(engine, 8)  # warm up
    single_decode = statistics.median([(await one(engine, args.tokens))[1] for _ in range(3)])
    rows = []
    base = 0.0
    for concurrency in CONCURRENCY:
        began = time.perf_counter()
        results = await asyncio.gather(*(one(engine, args.tokens) for _ in range(concurrency)))
        wall = time.perf_counter() - began
        total = sum(count for count, _ in results)
        aggregate = total / wall
        base = base or aggregate
        streams = statistics.median(rate for _, rate in results)
        rows.append((concurrency, total, wall, aggregate, aggregate / base, streams))
    print(f"\nsingle-stream decode: {single_decode:,.1f} tokens/s")
    if model.device.type == "cuda":
        bandwidth = args.bandwidth or next(
            (gbps for key, gbps in BANDWIDTH_GBPS.items() if key in name), 3350.0
        )
        bound = bandwidth * 1e9 / weight_bytes
        print(
            f"memory-bandwidth bound: {bound:,.0f} tokens/s ({weight_bytes / 1e9:.2f} GB per "
            f"token at {bandwidth:,.0f} GB/s); single stream reaches {single_decode / bound:.1%}"
        )
    print(f"peak batch seen by the engine: {engine.stats.peak_batch}\n")
    print(f"{'concurrent':>10} {'tokens':>7} {'wall s':>7} {'aggregate tok/s':>16} "
          f"{'x single':>9} {'per-stream tok/s':>17}")  # fmt: skip
    for concurrency, total, wall, aggregate, ratio, streams in rows:
        print(
            f"{concurrency:>10} {total:>7} {wall:>7.2f} {aggregate:>16,.1f} {ratio:>8.1f}x "
            f"{streams:>17,.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", help="a local model folder instead of the built-in one")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per request")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (CPU)")
    parser.add_argument("--bandwidth", type=float, default=0.0, help="GPU memory bandwidth in GB/s")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch looks: keep device_map on the CPU
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to torch")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
