"""The model catalog: short names for model references, plus the limits the bot needs.

A :class:`ModelSpec` names one model (``gpt-4o-mini``) and says where it lives (``ref``,
``scheme:target`` such as ``openai:gpt-4o-mini`` or ``hf:Qwen/Qwen2.5-Coder-1.5B-Instruct``).
:meth:`Catalog.builtin` holds the names that work out of the box; users add or override entries
in the TOML config without code: :meth:`Catalog.parse_entry` turns one ``[models.NAME]`` table
into a spec (the one place that reads those tables) and :meth:`Catalog.with_specs` adds them.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
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
        # The messages name the field: parse_entry prefixes them with the TOML table.
        scheme, sep, target = self.ref.partition(":")
        if not (scheme and sep and target):
            raise ValueError(f"ref {self.ref!r} must look like scheme:target")
        for key in ("context_window", "max_new_tokens"):
            if (value := getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, not {value!r}")
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


def _table_keys() -> dict[str, type]:
    """TOML key -> accepted type of a ``[models.NAME]`` table, derived from :class:`ModelSpec`.

    Every field but ``name`` (the table's own name) is a key, so a new field is a new key
    without a second list to keep in step.
    """
    hints = typing.get_type_hints(ModelSpec)
    keys: dict[str, type] = {}
    for spec_field in fields(ModelSpec):
        if spec_field.name == "name":
            continue
        hint = hints[spec_field.name]
        # ``str | None`` takes a string; None is "leave the key out".
        accepted = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
        if len(accepted) != 1 or accepted[0] not in (str, int):
            raise TypeError(f"ModelSpec.{spec_field.name}: no TOML form for {hint!r}")
        keys[spec_field.name] = accepted[0]
    return keys


# TOML key -> accepted Python type, for user entries (``ref`` is required).
_FIELDS = _table_keys()

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

    def with_specs(self, specs: Iterable[ModelSpec]) -> Catalog:
        """A copy with ``specs`` added; one named like an entry replaces it in its place."""
        return Catalog([*self._specs.values(), *specs])

    @staticmethod
    def parse_entry(name: str, table: object) -> ModelSpec:
        """The spec of one TOML ``[models.NAME]`` table (``name`` is NAME).

        A table takes ``ref`` (required, a registered scheme), ``description``,
        ``context_window``, ``max_new_tokens``, ``base_url``, ``api_key_env`` and (local
        models) ``quantization``: the fields of :class:`ModelSpec`. Raises :class:`ValueError`
        with a one-line message starting ``[models.NAME]`` that names the key, for an unknown
        key, a wrong type or a bad value. (Engines never import the bot, so the bot turns it
        into its own configuration error, adding the file.)
        """
        where = f"[models.{name}]"
        if not name or ":" in name or name != name.strip():
            raise ValueError(
                f"{where}: a model name must be non-empty, without ':' or spaces around"
            )
        if not isinstance(table, Mapping):
            raise ValueError(f"{where} must be a table, like: [models.{name}] ref = 'openai:...'")
        values: dict[str, Any] = {}
        for key, value in table.items():
            expected = _FIELDS.get(key)
            if expected is None:
                raise ValueError(
                    f"{where}: unknown key {key!r}; expected one of: {', '.join(_FIELDS)}"
                )
            # bool is an int subclass in Python; `context_window = true` is still a mistake.
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(
                    f"{where}: {key} must be {'an integer' if expected is int else 'a string'}, "
                    f"not {value!r}"
                )
            values[key] = value
        if "ref" not in values:
            raise ValueError(
                f"{where}: missing required key 'ref' (e.g. ref = 'openai:gpt-4o-mini')"
            )
        try:
            spec = ModelSpec(name=name, **values)
        except ValueError as err:  # the field's own rule (ref's form, a positive limit…)
            raise ValueError(f"{where}: {err}") from None
        if spec.scheme not in registry.schemes():
            raise ValueError(
                f"{where}: ref {spec.ref!r} has unknown scheme {spec.scheme!r}; "
                f"expected one of: {', '.join(registry.schemes())}"
            )
        return spec

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
