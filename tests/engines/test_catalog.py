from __future__ import annotations

import ast
import datetime
import re
import sys
import typing
from pathlib import Path

import openai.types.shared.chat_model as sdk_chat_model
import pytest
from openai.types.shared import ChatModel, ReasoningEffort

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
from engines.catalog import REASONING_EFFORTS
from engines.openai_compat import OpenAIEngine

#: how long before an announced shutdown CI starts failing (time to pick and ship a successor)
SHUTDOWN_WARNING = datetime.timedelta(days=90)


def sdk_shutdowns() -> dict[str, datetime.date | None]:
    """Model id -> announced shutdown date, from the installed SDK's ``ChatModel`` docstring.

    The SDK documents deprecations only there (a string after the alias, so not at runtime):
    bullets of quoted ids followed by "Announced shutdown date: YYYY-MM-DD". An id listed
    without a date ("Not a supported model ID") maps to None.
    """
    tree = ast.parse(Path(sdk_chat_model.__file__).read_text(encoding="utf-8"))
    docstring = None
    for node, after in zip(tree.body, tree.body[1:], strict=False):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        named = isinstance(target, ast.Name) and target.id == "ChatModel"
        if named and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docstring = str(after.value.value)
    assert docstring is not None and "Deprecated values" in docstring, "the SDK changed its format"
    shutdowns: dict[str, datetime.date | None] = {}
    for bullet in re.split(r"\n- ", docstring):
        found = re.search(r"shutdown\s+date:\s*(\d{4}-\d{2}-\d{2})", bullet)
        when = datetime.date.fromisoformat(found.group(1)) if found else None
        for model_id in re.findall(r'"([^"]+)"', bullet):
            shutdowns[model_id] = when
    assert sum(when is not None for when in shutdowns.values()) > 5, "no dates found: the format?"
    return shutdowns


def openai_hosted_builtins() -> list[ModelSpec]:
    return [s for s in Catalog.builtin() if s.scheme == "openai" and s.base_url is None]


def shutdown_problems(specs: list[ModelSpec], today: datetime.date) -> list[str]:
    """What is wrong with these OpenAI entries by the SDK's deprecation list, as of ``today``."""
    shutdowns = sdk_shutdowns()
    known = set(typing.get_args(ChatModel))
    problems = []
    for spec in specs:
        when = shutdowns.get(spec.target, datetime.date.max)
        if spec.target not in known:
            problems.append(f"{spec.name}: not a model id the SDK knows")
        elif when is None:
            problems.append(f"{spec.name}: the SDK lists it as not supported")
        elif when <= today + SHUTDOWN_WARNING:
            problems.append(f"{spec.name}: OpenAI shuts it down on {when}; replace it")
    return problems


def test_builtin_openai_models_are_not_shut_down_soon() -> None:
    """Fails 90 days before the SDK's announced shutdown of any built-in OpenAI model."""
    builtins = openai_hosted_builtins()
    assert len(builtins) >= 2  # a small default and a larger one
    assert shutdown_problems(builtins, datetime.date.today()) == []


def test_the_shutdown_check_reads_the_sdk() -> None:
    shutdowns = sdk_shutdowns()
    when = shutdowns["gpt-4o-mini"]  # the old default is listed, with a date
    assert isinstance(when, datetime.date)
    old = [ModelSpec(name="old", ref="openai:gpt-4o-mini")]
    assert shutdown_problems(old, when - datetime.timedelta(days=91)) == []
    [problem] = shutdown_problems(old, when - datetime.timedelta(days=89))
    assert f"shuts it down on {when}" in problem
    assert shutdowns["gpt-5.1-mini"] is None  # "Not a supported model ID"
    assert shutdown_problems([ModelSpec(name="u", ref="openai:gpt-5.1-mini")], when) != []
    assert shutdown_problems([ModelSpec(name="n", ref="openai:no-such-model")], when) != []


def test_builtin_openai_models_are_reasoning_models_set_up_as_such() -> None:
    for spec in openai_hosted_builtins():
        assert spec.token_limit_param == "max_completion_tokens", spec.name
        assert spec.temperature is False and spec.reasoning_effort in REASONING_EFFORTS
        assert spec.predicted_outputs is False  # reasoning models refuse Predicted Outputs
        assert spec.max_new_tokens >= 8192  # the bound covers the reasoning tokens too


def test_reasoning_efforts_are_the_sdks() -> None:
    [literal] = [arg for arg in typing.get_args(ReasoningEffort) if arg is not type(None)]
    assert set(REASONING_EFFORTS) == set(typing.get_args(literal))


def test_builtin_names_and_specs() -> None:
    catalog = Catalog.builtin()
    assert {"gpt-6.1-terra", "gpt-6.2-sol", "qwen-coder", "hermes"} <= set(catalog.names())
    qwen = catalog.resolve("qwen-coder")
    assert qwen.ref == "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct"
    assert (qwen.scheme, qwen.target) == ("hf", "Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert qwen.context_window == 32768
    assert "CPU" in qwen.description
    assert catalog.resolve("gpt-6.1-terra").context_window == 128_000
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
    spec = Catalog.builtin().resolve("openai:gpt-6.1-terra")
    assert spec.name == "openai:gpt-6.1-terra"
    assert spec.context_window == 128_000
    # and the request parameters the model takes
    assert (spec.token_limit_param, spec.temperature) == ("max_completion_tokens", False)


@pytest.mark.parametrize("ref", ["gpt-5-ultra", "nope:model", "openai:", "", "openai"])
def test_unknown_reference_names_the_choices(ref: str) -> None:
    with pytest.raises(UnknownModel) as caught:
        Catalog.builtin().resolve(ref)
    assert caught.value.choices == Catalog.builtin().names()
    assert "gpt-6.1-terra" in str(caught.value) and "openai:<model-id>" in str(caught.value)


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


def test_parse_entry_reads_request_parameters() -> None:
    table = {
        "ref": "openai:thinker",
        "token_limit_param": "max_completion_tokens",
        "temperature": False,
        "reasoning_effort": "high",
        "predicted_outputs": True,
        "prompt_cache_key": True,
        "safety_identifier": False,
        "extra_body": {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
    }
    spec = Catalog.parse_entry("thinker", table)
    assert spec == ModelSpec(name="thinker", **table)  # type: ignore[arg-type]
    assert spec.extra_body["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(TypeError):
        spec.extra_body["top_k"] = 1  # type: ignore[index]  # read-only
    hash(spec)  # a dict inside does not make a spec unhashable (the engine pool keys by it)
    defaults = ModelSpec(name="d", ref="openai:x")
    assert (defaults.token_limit_param, defaults.temperature, defaults.reasoning_effort) == (
        "max_tokens", True, None,
    )  # fmt: skip
    assert (defaults.prompt_cache_key, defaults.safety_identifier) == (None, None)
    assert not defaults.predicted_outputs and dict(defaults.extra_body) == {}


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
            ModelSpec(name="gpt-6.1-terra", ref="openai:gpt-6.1-terra", api_key_env="WORK_KEY"),
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
    assert catalog.resolve("gpt-6.1-terra").api_key_env == "WORK_KEY"
    assert catalog.names()[0] == "gpt-6.1-terra"  # an override keeps its place
    assert Catalog.builtin().resolve("gpt-6.1-terra").api_key_env is None  # original untouched


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
        ({"ref": "openai:x", "max_completion_tokens": 9}, r"unknown key 'max_completion_tokens'"),
        ({"ref": "openai:x", "token_limit_param": "max_new"}, r"token_limit_param must be one"),
        ({"ref": "openai:x", "temperature": 0.2}, r"temperature must be true or false, not 0.2"),
        ({"ref": "openai:x", "predicted_outputs": 1}, r"predicted_outputs must be true or false"),
        ({"ref": "openai:x", "reasoning_effort": "hgih"}, r"reasoning_effort must be one of none"),
        ({"ref": "openai:x", "reasoning_effort": True}, r"reasoning_effort must be a string"),
        ({"ref": "openai:x", "extra_body": "top_k=2"}, r"\]: extra_body must be a table"),
        ({"ref": "openai:x", "extra_body": {"stream": False}}, r"extra_body may not set stream"),
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
    assert isinstance(create_engine(catalog.resolve("gpt-6.1-terra")), OpenAIEngine)
    echo = create_engine(catalog.resolve("fake:parrot"))
    assert isinstance(echo, FakeEngine) and echo.model == "parrot"


@pytest.mark.parametrize("name", ["qwen-coder", "hermes"])
def test_hf_without_the_local_extra_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # find_spec: not installed
    with pytest.raises(EngineNotInstalled, match=r"pip install -e '\.\[local\]'"):
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
