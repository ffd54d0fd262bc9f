from __future__ import annotations

import sys

import pytest

from engines import (
    Catalog,
    EngineNotInstalled,
    FakeEngine,
    ModelSpec,
    UnknownModel,
    create_engine,
    register_engine,
    schemes,
    unregister_engine,
)
from engines.openai_compat import OpenAIEngine


def test_builtin_names_and_specs() -> None:
    catalog = Catalog.builtin()
    assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "qwen-coder", "hermes"} <= set(catalog.names())
    qwen = catalog.resolve("qwen-coder")
    assert qwen.ref == "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct"
    assert (qwen.scheme, qwen.target) == ("hf", "Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert qwen.context_window == 32768
    assert "CPU" in qwen.description
    assert catalog.resolve("gpt-4o-mini").context_window == 128_000
    assert [spec.name for spec in catalog] == catalog.names()
    assert "hermes" in catalog and len(catalog) == len(catalog.names())


def test_target_keeps_later_colons() -> None:
    spec = ModelSpec(name="x", ref="hf:/models/a:b")
    assert (spec.scheme, spec.target) == ("hf", "/models/a:b")


def test_resolve_ad_hoc_reference() -> None:
    catalog = Catalog.builtin()
    spec = catalog.resolve("openai:my-finetune")
    assert spec == ModelSpec(name="openai:my-finetune", ref="openai:my-finetune")
    assert catalog.resolve(" hf:./models/tiny ").target == "./models/tiny"


def test_ad_hoc_reference_inherits_limits_of_a_matching_entry() -> None:
    spec = Catalog.builtin().resolve("openai:gpt-4o-mini")
    assert spec.name == "openai:gpt-4o-mini"
    assert spec.context_window == 128_000


@pytest.mark.parametrize("ref", ["gpt-5-ultra", "nope:model", "openai:", "", "openai"])
def test_unknown_reference_names_the_choices(ref: str) -> None:
    with pytest.raises(UnknownModel) as caught:
        Catalog.builtin().resolve(ref)
    assert caught.value.choices == Catalog.builtin().names()
    assert "gpt-4o-mini" in str(caught.value) and "openai:<model-id>" in str(caught.value)


def test_parse_entry_reads_a_models_table() -> None:
    spec = Catalog.parse_entry(
        "team",
        {
            "ref": "hf:org/model",
            "description": "d",
            "context_window": 4096,
            "max_new_tokens": 512,
            "base_url": "http://127.0.0.1:1/v1",
            "api_key_env": "TEAM_KEY",
            "quantization": "8bit",
        },
    )
    assert spec == ModelSpec(
        name="team", ref="hf:org/model", description="d", context_window=4096,
        max_new_tokens=512, base_url="http://127.0.0.1:1/v1", api_key_env="TEAM_KEY",
        quantization="8bit",
    )  # fmt: skip
    minimal = Catalog.parse_entry("mini", {"ref": "openai:x"})
    assert minimal == ModelSpec(name="mini", ref="openai:x")


def test_with_specs_adds_and_overrides() -> None:
    catalog = Catalog.builtin().with_specs(
        [
            ModelSpec(
                name="local-llama",
                ref="openai:llama3.2",
                description="Ollama on this machine",
                context_window=4096,
                base_url="http://127.0.0.1:11434/v1",
            ),
            ModelSpec(name="gpt-4o-mini", ref="openai:gpt-4o-mini", api_key_env="WORK_OPENAI_KEY"),
        ]
    )
    llama = catalog.resolve("local-llama")
    assert llama == ModelSpec(
        name="local-llama",
        ref="openai:llama3.2",
        description="Ollama on this machine",
        context_window=4096,
        base_url="http://127.0.0.1:11434/v1",
    )
    assert catalog.resolve("gpt-4o-mini").api_key_env == "WORK_OPENAI_KEY"
    assert catalog.names()[0] == "gpt-4o-mini"  # an override keeps its place
    assert Catalog.builtin().resolve("gpt-4o-mini").api_key_env is None  # original untouched


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"ref": "openai:x", "colour": "red"}, r"\[models\.mine\]: unknown key 'colour'"),
        ({"description": "no ref"}, r"\[models\.mine\]: missing required key 'ref'"),
        ({"ref": 42}, r"\[models\.mine\]: ref must be a string"),
        ({"ref": "openai:x", "context_window": "big"}, r"context_window must be an integer"),
        ({"ref": "openai:x", "context_window": True}, r"context_window must be an integer"),
        ({"ref": "openai:x", "max_new_tokens": 0}, r"max_new_tokens must be a positive"),
        ({"ref": "openai:x", "context_window": -1}, r"\]: context_window must be a positive"),
        ({"ref": ":x"}, r"\[models\.mine\]: ref ':x' must look like scheme:target"),
        ({"ref": "gpt-4o"}, r"\[models\.mine\]: ref 'gpt-4o' must look like scheme:target"),
        ({"ref": "ollama:llama3"}, r"unknown scheme 'ollama'"),
    ],
)
def test_parse_entry_rejects_bad_entries(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Catalog.parse_entry("mine", table)


def test_parse_entry_rejects_a_non_table_and_a_name_with_a_colon() -> None:
    with pytest.raises(ValueError, match=r"\[models\.mine\] must be a table"):
        Catalog.parse_entry("mine", "openai:x")
    with pytest.raises(ValueError, match="without ':'"):
        Catalog.parse_entry("a:b", {"ref": "openai:x"})


def test_registry_builds_each_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    catalog = Catalog.builtin()
    assert {"openai", "hf", "fake"} <= set(schemes())
    assert isinstance(create_engine(catalog.resolve("gpt-4o-mini")), OpenAIEngine)
    echo = create_engine(catalog.resolve("fake:parrot"))
    assert isinstance(echo, FakeEngine) and echo.model == "parrot"


@pytest.mark.parametrize("name", ["qwen-coder", "hermes"])
def test_hf_without_the_local_extra_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # find_spec: not installed
    with pytest.raises(EngineNotInstalled, match=r"pip install 'codethread\[local\]'"):
        create_engine(Catalog.builtin().resolve(name))


def test_hermes_uses_chatml_prompts_and_local_specs_take_a_quantization() -> None:
    hermes = Catalog.builtin().resolve("hermes")
    assert hermes.ref == "hf-chatml:NousResearch/Hermes-3-Llama-3.1-8B"
    assert "hf-chatml" in schemes()
    big = Catalog.parse_entry("big", {"ref": "hf-chatml:org/model", "quantization": "4bit"})
    catalog = Catalog.builtin().with_specs([big])
    assert catalog.resolve("big").quantization == "4bit"
    assert catalog.resolve("hf-chatml:org/model").quantization == "4bit"
    with pytest.raises(ValueError, match=r"\[models\.big\]: quantization must be '4bit' or '8bit'"):
        Catalog.parse_entry("big", {"ref": "hf:org/model", "quantization": "3bit"})
    with pytest.raises(ValueError, match="quantization"):
        ModelSpec(name="x", ref="hf:x", quantization="fp8")


def test_register_engine_serves_a_new_scheme() -> None:
    register_engine("canned", lambda spec: FakeEngine(lambda request: spec.target, model="c"))
    try:
        spec = Catalog.builtin().resolve("canned:hello")
        assert isinstance(create_engine(spec), FakeEngine)
    finally:
        unregister_engine("canned")
    with pytest.raises(UnknownModel):
        Catalog.builtin().resolve("canned:hello")
    with pytest.raises(UnknownModel):
        create_engine(ModelSpec(name="x", ref="canned:hello"))
