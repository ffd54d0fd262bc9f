"""The model catalog: short names for model references, plus the limits the bot needs.

A :class:`ModelSpec` names one model (``gpt-6.1-terra``) and says where it lives (``ref``,
``scheme:target`` such as ``openai:gpt-6.1-terra`` or ``hf:Qwen/Qwen2.5-Coder-1.5B-Instruct``).
:meth:`Catalog.builtin` holds the names that work out of the box; users add or override entries
in the TOML config without code: :meth:`Catalog.parse_entry` turns one ``[models.NAME]`` table
into a spec (the one place that reads those tables) and :meth:`Catalog.with_specs` adds them.

A spec also says which request parameters its model accepts, because servers differ and a
wrong one is an HTTP 400, not a worse answer: OpenAI's reasoning models refuse ``max_tokens``
and a non-default ``temperature`` and take a ``reasoning_effort``; Predicted Outputs exist
only for some models; other servers want their own fields (``extra_body``). The built-in
OpenAI entries are set up for what they are; a user entry states it in TOML.

The built-in OpenAI models are ones the installed ``openai`` SDK does not list for shutdown
(its ``ChatModel`` docstring, "Deprecated values"); a test fails when one of them is announced
for shutdown within 90 days, so a deprecation is caught by CI before users meet it.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from engines import registry
from engines.errors import UnknownModel

__all__ = ["QUANTIZATIONS", "REASONING_EFFORTS", "TOKEN_LIMIT_PARAMS", "Catalog", "ModelSpec"]

#: the accepted values of :attr:`ModelSpec.quantization` (None: the checkpoint's dtype)
QUANTIZATIONS = (None, "4bit", "8bit")
#: the accepted values of :attr:`ModelSpec.token_limit_param`: the name of the request field
#: that bounds the answer (OpenAI's reasoning models accept only the second)
TOKEN_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens")
#: the accepted values of :attr:`ModelSpec.reasoning_effort` (the SDK's ``ReasoningEffort``;
#: a test keeps them in step, so a typo in the config is refused at start, not by the server)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
#: request fields the engine owns; ``extra_body`` may not replace them (the stream would break)
_ENGINE_OWNED = frozenset({"model", "messages", "stream", "stream_options"})


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
    # -- request parameters (OpenAI-compatible servers) -------------------------------------
    #: the request field that bounds the answer: ``max_tokens`` (what most servers know) or
    #: ``max_completion_tokens`` (OpenAI's reasoning models refuse ``max_tokens``)
    token_limit_param: str = "max_tokens"
    #: whether the model takes the bot's low temperature; reasoning models refuse any but 1,
    #: so with False no temperature is sent
    temperature: bool = True
    #: ``reasoning_effort`` sent with each request (reasoning models), e.g. ``"low"``
    reasoning_effort: str | None = None
    #: send the current code as a Predicted Output on adjust turns (OpenAI's gpt-4o/4.1
    #: families; not reasoning models, which refuse it)
    predicted_outputs: bool = False
    #: send a stable per-session ``prompt_cache_key`` / a hashed user ``safety_identifier``;
    #: None: only to OpenAI's own API (other servers may refuse fields they do not know)
    prompt_cache_key: bool | None = None
    safety_identifier: bool | None = None
    #: more request fields, merged into the JSON body as they are (e.g. vLLM's ``top_k`` or
    #: ``chat_template_kwargs``); read-only, and left out of the hash
    extra_body: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

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
        if self.token_limit_param not in TOKEN_LIMIT_PARAMS:
            raise ValueError(
                f"token_limit_param must be one of {', '.join(TOKEN_LIMIT_PARAMS)}, "
                f"not {self.token_limit_param!r}"
            )
        if self.reasoning_effort is not None and self.reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, "
                f"not {self.reasoning_effort!r}"
            )
        if owned := sorted(_ENGINE_OWNED & set(self.extra_body)):
            raise ValueError(f"extra_body may not set {', '.join(owned)}: the engine sends it")
        # A frozen spec should not change under its engine: keep a read-only copy.
        object.__setattr__(self, "extra_body", MappingProxyType(dict(self.extra_body)))

    @property
    def scheme(self) -> str:
        """The part of ``ref`` before the first ``:`` (``openai``, ``hf``, ``fake``)."""
        return self.ref.partition(":")[0]

    @property
    def target(self) -> str:
        """The part of ``ref`` after the first ``:`` (a model id, hub id or local path)."""
        return self.ref.partition(":")[2]


#: the TOML value type of each field type, and how a message names it
_TOML_FORMS: dict[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    dict: "a table",
}


def _table_keys() -> dict[str, type]:
    """TOML key -> accepted type of a ``[models.NAME]`` table, derived from :class:`ModelSpec`.

    Every field but ``name`` (the table's own name) is a key, so a new field is a new key
    without a second list to keep in step. A ``Mapping`` field takes a TOML table (a dict).
    """
    hints = typing.get_type_hints(ModelSpec)
    keys: dict[str, type] = {}
    for spec_field in fields(ModelSpec):
        if spec_field.name == "name":
            continue
        hint = hints[spec_field.name]
        if typing.get_origin(hint) is Mapping:
            keys[spec_field.name] = dict
            continue
        # ``str | None`` takes a string; None is "leave the key out".
        accepted = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
        if len(accepted) != 1 or accepted[0] not in _TOML_FORMS:
            raise TypeError(f"ModelSpec.{spec_field.name}: no TOML form for {hint!r}")
        keys[spec_field.name] = accepted[0]
    return keys


# TOML key -> accepted Python type, for user entries (``ref`` is required).
_FIELDS = _table_keys()

# OpenAI's current models are reasoning models: max_completion_tokens, no temperature, an
# effort. Context windows are a floor the SDK does not state (a smaller one only trims history
# sooner); max_new_tokens also covers the reasoning tokens, hence the room.
_BUILTIN = (
    ModelSpec(
        name="gpt-6.1-terra",
        ref="openai:gpt-6.1-terra",
        description="OpenAI's small, fast model (the default with an OpenAI key)",
        context_window=128_000,
        max_new_tokens=16_384,
        token_limit_param="max_completion_tokens",
        temperature=False,
        reasoning_effort="low",
    ),
    ModelSpec(
        name="gpt-6.2-sol",
        ref="openai:gpt-6.2-sol",
        description="OpenAI's larger model, for harder code",
        context_window=128_000,
        max_new_tokens=32_768,
        token_limit_param="max_completion_tokens",
        temperature=False,
        reasoning_effort="medium",
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
    # compose.yaml's gpu profile: vLLM serves this name (never a catalog name, so
    # `CODETHREAD_MODEL=qwen3-coder-vllm` cannot quietly mean a local model) with
    # --max-model-len 32768, and both services read the same VLLM_API_KEY, so the OpenAI key
    # is never sent there.
    ModelSpec(
        name="qwen3-coder-vllm",
        ref="openai:qwen3-coder-30b-a3b",
        description="Qwen3-Coder-30B-A3B on vLLM (compose.yaml's gpu profile)",
        context_window=32_768,
        max_new_tokens=4096,
        base_url="http://vllm:8000/v1",
        api_key_env="VLLM_API_KEY",
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

        A table takes ``ref`` (required, a registered scheme) and the other fields of
        :class:`ModelSpec` (``description``, ``context_window``, ``base_url``,
        ``token_limit_param``, ``extra_body`` as a table…). Raises :class:`ValueError`
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
            wrong_bool = isinstance(value, bool) and expected is not bool
            if not isinstance(value, expected) or wrong_bool:
                raise ValueError(f"{where}: {key} must be {_TOML_FORMS[expected]}, not {value!r}")
            values[key] = value
        if "ref" not in values:
            raise ValueError(
                f"{where}: missing required key 'ref' (e.g. ref = 'openai:gpt-6.1-terra')"
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
        description, limits and request parameters of the first catalog entry with the same
        ``ref``, if any (but never its endpoint or key). An unknown OpenAI model id gets the
        defaults (``max_tokens``, a temperature): a reasoning model needs a ``[models.NAME]``
        entry. Raises :class:`UnknownModel` naming the choices otherwise.
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
