from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import bot.config
from bot.config import Config, check_db_path, load_config
from bot.errors import ConfigError
from engines import Catalog, ModelSpec, catalog

README = Path(__file__).resolve().parents[2] / "README.md"


def write(tmp_path: Path, content: str) -> Path:
    toml = tmp_path / "ct.toml"
    toml.write_text(content)
    return toml


def test_environment_over_toml_over_defaults(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        'model = "team"\nlanguage = "rust"\nmax_prompt_chars = 100\nallowed_users = ["U1"]\n'
        '[models.team]\nref = "openai:qwen"\nbase_url = "http://127.0.0.1:1/v1"\n',
    )
    config = load_config(
        {
            "CODETHREAD_CONFIG": str(toml),
            "CODETHREAD_LANGUAGE": "go",
            "CODETHREAD_DB": str(tmp_path / "x.db"),
        }
    )
    assert config.model == "team" and config.language == "go" and config.max_prompt_chars == 100
    assert config.allowed_users == {"U1"}
    assert config.models == (
        ModelSpec(name="team", ref="openai:qwen", base_url="http://127.0.0.1:1/v1"),
    )
    assert config.db_path == tmp_path / "x.db"
    assert config.rate_limit_per_minute == 20 and config.edit_interval == 1.0  # defaults


def test_without_file_or_variables_every_field_has_its_default(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    assert load_config({"CODETHREAD_DB": str(db)}) == Config(db_path=db, model="qwen-coder")


def test_default_model_depends_on_openai_settings() -> None:
    assert load_config({}).model == "qwen-coder"
    assert load_config({"OPENAI_API_KEY": "sk-x"}).model == "gpt-6.1-terra"
    assert load_config({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}).model == "gpt-6.1-terra"
    assert "gpt-6.1-terra" in Catalog.builtin()  # the default is a built-in entry
    assert load_config({"OPENAI_API_KEY": "sk-x", "CODETHREAD_MODEL": "hermes"}).model == "hermes"


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("CODETHREAD_MODEL", "model"),
        ("CODETHREAD_LANGUAGE", "language"),
        ("SLACK_BOT_TOKEN", "slack_bot_token"),
        ("SLACK_SIGNING_SECRET", "slack_signing_secret"),
        ("SLACK_APP_TOKEN", "slack_app_token"),
        ("SLACK_API_URL", "slack_api_url"),
        ("DISCORD_BOT_TOKEN", "discord_bot_token"),
        ("DISCORD_API_URL", "discord_api_url"),
    ],
)
def test_each_environment_variable_sets_its_field(variable: str, attribute: str) -> None:
    assert getattr(load_config({variable: "value"}), attribute) == "value"
    empty = load_config({variable: ""})  # an empty variable counts as unset
    assert getattr(empty, attribute) == getattr(load_config({}), attribute)


def test_db_path_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert load_config({"CODETHREAD_DB": "~/ct.db"}).db_path == Path("/home/someone/ct.db")


def test_values_are_converted_to_the_fields_types(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "turn_timeout = 30\nedit_interval = 0.5\nallowed_channels = [123456789, 'C1']\n"
        "run_snippets = false\nrepair_attempts = 0\nallow_any_model = true\n",
    )
    config = load_config({"CODETHREAD_CONFIG": str(toml)})

    assert config.turn_timeout == 30.0 and isinstance(config.turn_timeout, float)
    assert config.edit_interval == 0.5
    assert config.allowed_channels == {"123456789", "C1"}  # Discord ids may be numbers
    assert (config.run_snippets, config.repair_attempts, config.allow_any_model) == (False, 0, True)


def test_tokens_never_in_repr() -> None:
    config = load_config({"SLACK_BOT_TOKEN": "xoxb-secret", "DISCORD_BOT_TOKEN": "discord-secret"})
    assert config.slack_bot_token == "xoxb-secret"
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colour = 1", r": unknown key 'colour'; known keys: model, language, "),
        ("max_prompt_chars = 'big'", r": max_prompt_chars must be an integer, not 'big'\.$"),
        ("max_prompt_chars = true", r": max_prompt_chars must be an integer, not True\.$"),
        ("edit_interval = 'fast'", r": edit_interval must be a number, not 'fast'\.$"),
        ("run_snippets = 1", r": run_snippets must be true or false, not 1\.$"),
        ("allowed_users = 'U1'", r": allowed_users must be a list of ids"),
        ("allowed_users = [true]", r": allowed_users must be a list of ids"),
        ("models = 3", r": models must be \[models\.NAME\] tables, not 3\.$"),
        ("= =", "Cannot read"),
    ],
)
def test_bad_toml_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    toml = write(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config({"CODETHREAD_CONFIG": str(toml)})
    if "Cannot read" not in message:
        assert str(caught.value).startswith(f"{toml}: ")  # names the file, then the key


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('ref = "openai:x"\ncolour = "red"', r"\[models\.team\]: unknown key 'colour'"),
        ('description = "no ref"', r"\[models\.team\]: missing required key 'ref'"),
        ('ref = "openai:x"\ncontext_window = 0', r"\[models\.team\]: context_window must be"),
        ('ref = "ollama:llama3"', r"\[models\.team\]: ref 'ollama:llama3' has unknown scheme"),
    ],
)
def test_bad_model_entry_names_the_file_and_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    toml = write(tmp_path, f"[models.team]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{toml}: ") + message) as caught:
        load_config({"CODETHREAD_CONFIG": str(toml)})
    assert "\n" not in str(caught.value)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"CODETHREAD_CONFIG": "/nonexistent/ct.toml"})


def toml_example(text: str, after: str) -> str:
    """The first example block after ``after``: indented (a docstring) or fenced (Markdown)."""
    rest = text[text.index(after) :]
    fenced = re.search(r"```toml\n(.*?)```", rest, re.S)
    indented = re.search(r"::\n\n((?:    .*\n|\n)+)", rest)
    if indented is not None and (fenced is None or indented.start() < fenced.start()):
        return "\n".join(line[4:] for line in indented.group(1).splitlines())
    assert fenced is not None
    return fenced.group(1)


def test_the_module_docstring_example_is_complete_and_loads(tmp_path: Path) -> None:
    assert bot.config.__doc__ is not None
    example = toml_example(bot.config.__doc__, "extend the model catalog without code")
    toml = write(tmp_path, example)

    config = load_config({"CODETHREAD_CONFIG": str(toml)})

    assert set(tomllib.loads(example)) == set(bot.config._TOML_KEYS)  # every key, shown once
    assert "edit_interval" in example
    assert [spec.name for spec in config.models] == ["qwen-local", "thinker"]
    local, thinker = config.models
    assert local.api_key_env == "TEAM_OLLAMA_KEY" and dict(local.extra_body) == {"top_k": 20}
    # every per-model key is shown in the example
    shown = set(tomllib.loads(example)["models"]["qwen-local"]) | set(
        tomllib.loads(example)["models"]["thinker"]
    )
    assert shown >= set(catalog._FIELDS) - {"max_new_tokens", "quantization"}
    assert (thinker.token_limit_param, thinker.temperature) == ("max_completion_tokens", False)
    assert (thinker.reasoning_effort, thinker.prompt_cache_key) == ("high", True)


def test_the_readme_example_loads(tmp_path: Path) -> None:
    toml = write(tmp_path, toml_example(README.read_text(), "Add your own models"))

    config = load_config({"CODETHREAD_CONFIG": str(toml)})

    assert config.model == "team-qwen"
    assert [spec.name for spec in config.models] == ["team-qwen", "deep"]
    deep = config.models[1]
    assert (deep.token_limit_param, deep.temperature, deep.reasoning_effort) == (
        "max_completion_tokens", False, "high",
    )  # fmt: skip


def test_a_postgresql_url_is_kept_as_a_url() -> None:
    url = "postgresql:///codethread?host=/run/postgresql"
    config = load_config({"CODETHREAD_DB": url, "CODETHREAD_MODEL": "qwen-coder"})
    assert config.db_path == url  # not a Path: that would fold its "///"
    check_db_path(config)  # no directory to look for
