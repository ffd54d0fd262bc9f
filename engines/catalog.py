"""The model catalog: short names for model references, plus the limits the bot needs.

A :class:`ModelSpec` names one model (``gpt-4o-mini``) and says where it lives (``ref``,
``scheme:target`` such as ``openai:gpt-4o-mini`` or ``hf:Qwen/Qwen2.5-Coder-1.5B-Instruct``).
:meth:`Catalog.builtin` holds the names that work out of the box; users add or override entries
in the TOML config (``[models.NAME]`` tables, see :meth:`Catalog.extended`) without code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engines import registry
from engines.errors import UnknownModel

__all__ = ["QUANTIZATIONS", "Catalog", "ModelSpec"]

#: the accepted values of :attr:`ModelSpec.quantization` (None: the checkpoint's dtype)
QUANTIZATIONS = (None, "4bit", "8bit")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One model: a name, a ``scheme:target`` reference and its limits."""

    name: str
    ref: str
    description: str = ""
    #: tokens the model attends to; the bot trims history to fit
    context_window: int = 8192
    #: upper bound on generated tokens per answer
    max_new_tokens: int = 2048
    #: OpenAI-compatible endpoint for this model only (overrides ``OPENAI_BASE_URL``)
    base_url: str | None = None
    #: environment variable holding this endpoint's key (instead of ``OPENAI_API_KEY``)
    api_key_env: str | None = None
    #: local models only: load the weights quantized, ``"4bit"`` or ``"8bit"`` (bitsandbytes)
    quantization: str | None = None

    def __post_init__(self) -> None:
        scheme, sep, target = self.ref.partition(":")
        if not (scheme and sep and target):
            raise ValueError(f"ref {self.ref!r} is not of the form scheme:target")
        if self.context_window < 1 or self.max_new_tokens < 1:
            raise ValueError("context_window and max_new_tokens must be positive")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be '4bit' or '8bit', not {self.quantization!r}")

    @property
    def scheme(self) -> str:
        """The part of ``ref`` before the first ``:`` (``openai``, ``hf``, ``fake``)."""
        return self.ref.partition(":")[0]

    @property
    def target(self) -> str:
        """The part of ``ref`` after the first ``:`` (a model id, hub id or local path)."""
        return self.ref.partition(":")[2]


# TOML key -> accepted Python type, for user entries (``ref`` is required).
_FIELDS: dict[str, type] = {
    "ref": str,
    "description": str,
    "context_window": int,
    "max_new_tokens": int,
    "base_url": str,
    "api_key_env": str,
    "quantization": str,
}

_BUILTIN = (
    ModelSpec(
        name="gpt-4o-mini",
        ref="openai:gpt-4o-mini",
        description="OpenAI's small, fast, cheap model",
        context_window=128_000,
        max_new_tokens=4096,
    ),
    ModelSpec(
        name="gpt-4o",
        ref="openai:gpt-4o",
        description="OpenAI's larger general model",
        context_window=128_000,
        max_new_tokens=4096,
    ),
    ModelSpec(
        name="gpt-4.1-mini",
        ref="openai:gpt-4.1-mini",
        description="OpenAI's small model with a long context, good at code",
        context_window=1_047_576,
        max_new_tokens=4096,
    ),
    ModelSpec(
        name="qwen-coder",
        ref="hf:Qwen/Qwen2.5-Coder-1.5B-Instruct",
        description="small coder model that runs on a CPU",
        context_window=32_768,
    ),
    ModelSpec(
        name="hermes",
        ref="hf-chatml:NousResearch/Hermes-3-Llama-3.1-8B",
        description="8B general model (Llama 3.1, ChatML prompts); wants a GPU",
        context_window=16_384,
    ),
)


class Catalog:
    """An ordered set of :class:`ModelSpec` by name; a later spec replaces an earlier one."""

    def __init__(self, specs: Iterable[ModelSpec] = ()) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self._specs[spec.name] = spec

    @classmethod
    def builtin(cls) -> Catalog:
        """The models that work out of the box (given a key or the local extra)."""
        return cls(_BUILTIN)

    def extended(self, tables: Mapping[str, Mapping[str, object]]) -> Catalog:
        """A copy with entries from TOML ``[models.NAME]`` tables added or overriding.

        Each table takes ``ref`` (required), ``description``, ``context_window``,
        ``max_new_tokens``, ``base_url``, ``api_key_env`` and (local models) ``quantization``.
        Raises :class:`ValueError` naming the entry and key for an unknown key, a wrong type or
        a bad value.
        """
        added = [_spec_from_table(name, table) for name, table in tables.items()]
        return Catalog([*self._specs.values(), *added])

    def resolve(self, ref: str) -> ModelSpec:
        """The spec for a catalog name or a ``scheme:target`` reference.

        An ad-hoc reference with a registered scheme gets ``name == ref``; it inherits the
        description and limits of the first catalog entry with the same ``ref``, if any (but
        never its endpoint or key). Raises :class:`UnknownModel` naming the choices otherwise.
        """
        ref = ref.strip()
        if ref in self._specs:
            return self._specs[ref]
        scheme, sep, target = ref.partition(":")
        if not (sep and target.strip() and scheme in registry.schemes()):
            raise UnknownModel(ref, choices=self.names())
        for spec in self._specs.values():
            if spec.ref == ref:
                return replace(spec, name=ref, base_url=None, api_key_env=None)
        return ModelSpec(name=ref, ref=ref)

    def names(self) -> list[str]:
        return list(self._specs)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __repr__(self) -> str:
        return f"Catalog({self.names()!r})"


def _spec_from_table(name: str, table: Mapping[str, object]) -> ModelSpec:
    where = f"[models.{name}]"
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"{where}: a model name must be non-empty, without ':' or spaces around")
    if not isinstance(table, Mapping):
        raise ValueError(f"{where} must be a table, like: [models.{name}] ref = 'openai:...'")
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = _FIELDS.get(key)
        if expected is None:
            raise ValueError(f"{where}: unknown key {key!r}; expected one of: {', '.join(_FIELDS)}")
        # bool is an int subclass in Python; `context_window = true` is still a mistake.
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ValueError(
                f"{where}: {key} must be {'an integer' if expected is int else 'a string'}, "
                f"not {value!r}"
            )
        values[key] = value
    if "ref" not in values:
        raise ValueError(f"{where}: missing required key 'ref' (e.g. ref = 'openai:gpt-4o-mini')")
    scheme, sep, target = values["ref"].partition(":")
    if not (sep and target):
        raise ValueError(f"{where}: ref {values['ref']!r} must look like scheme:target")
    if scheme not in registry.schemes():
        raise ValueError(
            f"{where}: ref {values['ref']!r} has unknown scheme {scheme!r}; "
            f"expected one of: {', '.join(registry.schemes())}"
        )
    for key in ("context_window", "max_new_tokens"):
        if key in values and values[key] < 1:
            raise ValueError(f"{where}: {key} must be a positive integer, not {values[key]!r}")
    if values.get("quantization") not in QUANTIZATIONS:
        raise ValueError(f"{where}: quantization must be '4bit' or '8bit'")
    return ModelSpec(name=name, **values)
