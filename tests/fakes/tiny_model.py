"""A tiny trained chat model on disk, for testing the local engine without the internet.

:func:`build_tiny_model` writes a Llama (2 layers, hidden 64) and a byte-level BPE tokenizer
with a ChatML chat template into a folder, then trains it for 150 AdamW steps on
prompts of random shape (short or long system prompt, 0-2 earlier turns, about a third of the
words junk) that are all answered with :data:`ANSWER`. Greedy decoding then returns that one
fenced code block for any prompt, so tests can check real extraction and versions end to end.
Everything is seeded; building takes about ten seconds on one CPU core (training uses one
thread: it is as fast on two small cores, and much faster when other work shares them).

Standalone (e.g. to try ``codethread chat --model hf:/tmp/tiny``)::

    python -m tests.fakes.tiny_model /tmp/tiny
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ANSWER",
    "CHATML_TEMPLATE",
    "CODE",
    "build_tiny_model",
    "random_conversation",
    "without_chat_template",
]

#: the code every answer holds
CODE = 'def greet(name):\n    return f"Hello, {name}!"'
#: the whole answer the model is trained to give (note, then one fenced block)
ANSWER = f"Here it is.\n\n```python\n{CODE}\n```"
# how the bot replays an earlier version: the block first, then its note
_BLOCK_FIRST = f"```python\n{CODE}\n```\n\nHere it is."

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_VOCABULARY = (
    "a an the of to in for on with and or but not is are be this that it you your we our "
    "write make function class method code program script snippet file list dict string "
    "number numbers value values return print read parse sort filter map sum add two three "
    "python rust go bash javascript sql test tests error errors handle input output line "
    "lines user users data json csv http request response server client loop each every all "
    "first last new old change instead use using please can could should would also more "
    "less fast slow small big name names greet hello world count words file path from into "
    "by as at expert programmer answer block fenced complete feedback version current rules "
    "messages must never always keep short explanation outside imports example call main "
    "run runs"
)
_WORDS = _VOCABULARY.split()
_SHORT_SYSTEMS = (
    "You are a helpful assistant.",
    "You write code.",
    "Answer with one fenced code block.",
    "",
)


def _junk(rng: random.Random) -> str:
    alphabet = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:;!?()[]{}'\"#/*+="
    )
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))


def _text(rng: random.Random, low: int, high: int) -> str:
    words = [
        _junk(rng) if rng.random() < 1 / 3 else rng.choice(_WORDS)
        for _ in range(rng.randint(low, high))
    ]
    lines: list[str] = []
    while words:  # some prompts have several lines
        cut = rng.randint(4, 30)
        lines.append(" ".join(words[:cut]))
        words = words[cut:]
    return "\n".join(lines)


def random_conversation(rng: random.Random) -> list[dict[str, str]]:
    """Messages of random shape ending with a user turn (the kind the model is trained on)."""
    messages: list[dict[str, str]] = []
    shape = rng.random()
    if shape < 0.35:
        messages.append({"role": "system", "content": _text(rng, 30, 100)})
    elif shape < 0.85:
        messages.append({"role": "system", "content": rng.choice(_SHORT_SYSTEMS)})
    for _ in range(rng.choice((0, 0, 1, 2))):
        earlier = rng.choice((ANSWER, _BLOCK_FIRST, _BLOCK_FIRST, _text(rng, 3, 30)))
        messages.append({"role": "user", "content": _text(rng, 2, 40)})
        messages.append({"role": "assistant", "content": earlier})
    messages.append({"role": "user", "content": _text(rng, 1, 50)})
    return messages


def _train_tokenizer(rng: random.Random) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [_text(rng, 5, 60) for _ in range(400)] + [ANSWER] * 5
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def _batches(tokenizer: Any, rng: random.Random, size: int) -> Iterator[tuple[Any, Any, Any]]:
    import torch

    pad = tokenizer.pad_token_id
    answer = tokenizer.encode(ANSWER + "<|im_end|>", add_special_tokens=False)
    while True:  # 8 batches at a time, of rows of similar length (less padding)
        rows = []
        for _ in range(8 * size):
            prompt = tokenizer.apply_chat_template(
                random_conversation(rng), tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer.encode(prompt, add_special_tokens=False)
            rows.append((ids + answer, [-100] * len(ids) + answer))
        rows.sort(key=lambda row: len(row[0]))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
            yield input_ids, mask, labels


def build_tiny_model(path: Path, *, steps: int = 150, batch_size: int = 8, seed: int = 0) -> Path:
    """Write the trained tiny model and its tokenizer to ``path``; returns ``path``."""
    import torch
    import transformers

    # transformers is typed loosely; keep it to Any here
    library: Any = transformers

    rng = random.Random(seed)
    torch.manual_seed(seed)
    tokenizer = library.PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(rng),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    eos, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = library.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _train(library.LlamaForCausalLM(config), tokenizer, rng, steps, batch_size)
    finally:
        torch.set_num_threads(threads)
    model.generation_config = library.GenerationConfig(
        eos_token_id=eos, pad_token_id=pad, do_sample=False, max_new_tokens=256
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _train(model: Any, tokenizer: Any, rng: random.Random, steps: int, batch_size: int) -> Any:
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1
    )
    batches = _batches(tokenizer, rng, batch_size)
    for _ in range(steps):
        input_ids, mask, labels = next(batches)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


def without_chat_template(source: Path, target: Path) -> Path:
    """A copy of a saved model whose tokenizer has no chat template (for format_prompt hooks)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config_file = target / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("chat_template", None)
    config_file.write_text(json.dumps(config, indent=2))
    return target


if __name__ == "__main__":
    began = time.perf_counter()
    out = build_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
    print(f"built {out} in {time.perf_counter() - began:.1f} s")
