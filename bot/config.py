"""Configuration: environment variables over an optional TOML file over defaults.

Environment (see DESIGN.md): ``CODETHREAD_DB``, ``CODETHREAD_CONFIG``, ``CODETHREAD_MODEL``,
``CODETHREAD_LANGUAGE``, ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` (read by the engine),
``SLACK_*`` and ``DISCORD_*`` (read by the adapters through this class).

The TOML file may hold these top-level keys and any number of ``[models.NAME]`` tables that
extend the model catalog without code::

    model = "qwen-local"            # default model reference
    language = "python"             # default language
    max_prompt_chars = 8000         # longer messages are refused before any engine call
    rate_limit_per_minute = 20      # per user, 0 = off
    turn_timeout = 300              # seconds for one whole answer
    allowed_users = ["U123"]        # empty = everyone
    allowed_channels = []           # empty = everywhere
    discord_allow_dms = false       # answer in Discord direct messages too
    run_snippets = true             # Run/Test/Fix in the bubblewrap sandbox
    repair_attempts = 2             # fix-and-test rounds of an automatic repair
    allow_any_model = false         # chat users may name any openai:/hf: model, not just these

    [models.qwen-local]
    ref = "openai:qwen2.5-coder:7b"
    base_url = "http://localhost:11434/v1"
    description = "Qwen coder on the team's Ollama"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from bot.errors import ConfigError

__all__ = ["Config", "load_config"]

_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "language": str,
    "max_prompt_chars": int,
    "rate_limit_per_minute": int,
    "turn_timeout": (int, float),
    "allowed_users": list,
    "allowed_channels": list,
    "models": dict,
    "discord_allow_dms": bool,
    "run_snippets": bool,
    "repair_attempts": int,
    "allow_any_model": bool,
}


@dataclass(frozen=True, kw_only=True)
class Config:
    db_path: Path
    model: str
    language: str = "python"
    max_prompt_chars: int = 8000
    rate_limit_per_minute: int = 20
    turn_timeout: float = 300.0
    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    discord_bot_token: str | None = field(default=None, repr=False)
    discord_api_url: str | None = None
    discord_allow_dms: bool = False  # answer /code in direct messages too
    run_snippets: bool = True  # Run/Test/Fix in the bubblewrap sandbox (when it works here)
    repair_attempts: int = 2  # fix-and-test rounds of an automatic repair
    allow_any_model: bool = False  # chat users may name any openai:/hf: reference


def _default_model(env: Mapping[str, str]) -> str:
    # With an OpenAI key or an OpenAI-compatible server, use it; otherwise a small local model.
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "gpt-4o-mini"
    return "qwen-coder"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"CODETHREAD_CONFIG points to {path}, which does not exist.") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"Cannot read config {path}: {err}") from None
    for key, value in data.items():
        if key not in _KEYS:
            raise ConfigError(f"Unknown key {key!r} in {path}; known: {', '.join(_KEYS)}.")
        wrong_bool = isinstance(value, bool) and _KEYS[key] is not bool
        if not isinstance(value, _KEYS[key]) or wrong_bool:
            raise ConfigError(f"{key!r} in {path} has the wrong type ({type(value).__name__}).")
    return data


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """The configuration from ``env`` (default ``os.environ``) and the TOML file it names."""
    env = os.environ if env is None else env
    data = _read_toml(Path(env["CODETHREAD_CONFIG"])) if env.get("CODETHREAD_CONFIG") else {}
    db = env.get("CODETHREAD_DB") or str(
        platformdirs.user_data_path("codethread") / "codethread.db"
    )
    return Config(
        db_path=Path(db).expanduser(),
        model=env.get("CODETHREAD_MODEL") or data.get("model") or _default_model(env),
        language=env.get("CODETHREAD_LANGUAGE") or data.get("language", "python"),
        max_prompt_chars=data.get("max_prompt_chars", 8000),
        rate_limit_per_minute=data.get("rate_limit_per_minute", 20),
        turn_timeout=float(data.get("turn_timeout", 300.0)),
        allowed_users=frozenset(map(str, data.get("allowed_users", []))),
        allowed_channels=frozenset(map(str, data.get("allowed_channels", []))),
        models=data.get("models", {}),
        slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        slack_app_token=env.get("SLACK_APP_TOKEN") or None,
        slack_api_url=env.get("SLACK_API_URL") or None,
        discord_bot_token=env.get("DISCORD_BOT_TOKEN") or None,
        discord_api_url=env.get("DISCORD_API_URL") or None,
        discord_allow_dms=data.get("discord_allow_dms", False),
        run_snippets=data.get("run_snippets", True),
        repair_attempts=data.get("repair_attempts", 2),
        allow_any_model=data.get("allow_any_model", False),
    )
