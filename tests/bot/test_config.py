from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError


def test_environment_over_toml_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "ct.toml"
    toml.write_text(
        'model = "team"\nlanguage = "rust"\nmax_prompt_chars = 100\nallowed_users = ["U1"]\n'
        '[models.team]\nref = "openai:qwen"\nbase_url = "http://127.0.0.1:1/v1"\n'
    )
    config = load_config(
        {
            "CODETHREAD_CONFIG": str(toml),
            "CODETHREAD_LANGUAGE": "go",
            "CODETHREAD_DB": str(tmp_path / "x.db"),
        }
    )
    assert config.model == "team" and config.language == "go" and config.max_prompt_chars == 100
    assert config.allowed_users == {"U1"} and config.models["team"]["ref"] == "openai:qwen"
    assert config.db_path == tmp_path / "x.db"


def test_default_model_depends_on_openai_settings() -> None:
    assert load_config({}).model == "qwen-coder"
    assert load_config({"OPENAI_API_KEY": "sk-x"}).model == "gpt-4o-mini"


def test_tokens_never_in_repr() -> None:
    config = load_config({"SLACK_BOT_TOKEN": "xoxb-secret", "DISCORD_BOT_TOKEN": "discord-secret"})
    assert config.slack_bot_token == "xoxb-secret"
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colour = 1", "Unknown key 'colour'"),
        ("max_prompt_chars = 'big'", "wrong type"),
        ("= =", "Cannot read"),
    ],
)
def test_bad_toml_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config({"CODETHREAD_CONFIG": str(toml)})


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"CODETHREAD_CONFIG": "/nonexistent/ct.toml"})
