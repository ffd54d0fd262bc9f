"""Why a local model failed to load, in one line a user can act on (reason, then the fix).

:func:`describe_load_error` turns what the tokenizer/model loaders raised into the detail of a
``failed`` readiness: no internet or not in the cache, no such model on the hub (or gated), a
missing or broken model folder, out of memory, a missing Python package, no chat template.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["MissingModelFolder", "NoChatTemplate", "describe_load_error", "short_message"]

_MAX_DETAIL = 160
_OFFLINE_HINT = (
    "download it once with `hf download {target}` on a machine with internet (copy HF_HOME "
    "here if needed), or point hf: at a local folder; or use a server instead: set "
    "OPENAI_API_KEY, or OPENAI_BASE_URL for an OpenAI-compatible one such as Ollama"
)
_PACKAGE_HINTS = {
    "bitsandbytes": "pip install bitsandbytes (quantization needs a CUDA GPU)",
    "accelerate": "pip install accelerate",
    "sentencepiece": "pip install sentencepiece",
    "tiktoken": "pip install tiktoken",
    "google": "pip install protobuf",
}


class NoChatTemplate(Exception):
    """The tokenizer has no chat template and the engine relies on one."""


class MissingModelFolder(FileNotFoundError):
    """A local path that is not a folder holding a model."""


def describe_load_error(exc: BaseException, *, target: str, offline: bool) -> str:
    """The readiness detail for ``exc``, raised while loading ``target``."""
    chain = list(_chain(exc))
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(exc, NoChatTemplate):
        return (
            f"the tokenizer of {target} has no chat template: use hf-chatml:{target} if the model "
            "was trained on ChatML, or a LocalEngine subclass with its own format_prompt"
        )
    if isinstance(exc, MissingModelFolder):
        return (
            f"{exc}: check the path; the folder must hold config.json, the tokenizer files "
            "and the weights (*.safetensors)"
        )
    if _out_of_memory(chain, text):
        return (
            f"out of memory loading {target}: pick a smaller model, set quantization = '4bit' "
            "for it in the config (needs bitsandbytes and a CUDA GPU), or free memory"
        )
    missing = next((e for e in chain if isinstance(e, ImportError)), None)
    if missing is not None:
        package = (missing.name or "").split(".")[0]
        if package:
            fix = _PACKAGE_HINTS.get(package, f"pip install {package}")
            return f"the Python package {package!r} is missing: {fix}"
        what = short_message(missing)
        return f"a Python package is missing ({what}): pip install -e '.[local]'"
    if names & {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"}:
        return (
            f"the Hugging Face hub has no model {target}, or it is gated: check the id, or "
            "accept its licence on huggingface.co and run `hf auth login`"
        )
    unreachable = names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError"}
    if unreachable or "couldn't connect" in text or "offline mode" in text:
        if offline:
            return (
                f"{target} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                + _OFFLINE_HINT.format(target=target)
            )
        return f"could not download {target} (no internet?): " + _OFFLINE_HINT.format(target=target)
    return (
        f"could not load {target} ({type(exc).__name__}: {short_message(exc)}); check that it is a "
        "causal language model with config.json, tokenizer files and *.safetensors weights"
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _out_of_memory(chain: list[BaseException], text: str) -> bool:
    if any(isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" for e in chain):
        return True
    return "out of memory" in text or "offload_folder" in text


def short_message(exc: BaseException) -> str:
    """The exception as one line of at most a couple hundred characters."""
    line = " ".join(str(exc).split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"
