"""Configuration: environment variables over an optional TOML file over defaults.

Environment (see DESIGN.md): ``CODETHREAD_DB``, ``CODETHREAD_CONFIG``, ``CODETHREAD_MODEL``,
``CODETHREAD_LANGUAGE``, ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` (read by the engine; here they
only choose the default model), ``SLACK_*`` and ``DISCORD_*`` (read by the adapters through
this class). An empty variable counts as unset.

The TOML file is ``CODETHREAD_CONFIG``, else ``~/.config/codethread/config.toml`` (platformdirs'
user config dir) when it exists. It may hold these top-level keys and any number of
``[models.NAME]`` tables that extend the model catalog without code::

    model = "qwen-local"            # default model reference
    language = "python"             # default language
    max_prompt_chars = 8000         # longer messages are refused before any engine call
    rate_limit_per_minute = 20      # per user, 0 = off
    turn_timeout = 300              # seconds for one whole answer
    edit_interval = 1.0             # seconds between edits of a streaming chat message
    job_stale_after = 30            # seconds before a dead process's turn is taken over
    allowed_users = ["U123"]        # empty = everyone
    allowed_channels = []           # empty = everywhere
    discord_allow_dms = false       # answer in Discord direct messages too
    discord_shard_count = 4         # Discord: the bot's shards in all (env DISCORD_SHARD_COUNT)
    discord_shard_ids = [0, 1]      # the shards this process connects (env DISCORD_SHARD_IDS=0,1)
    public_url = "https://bot.example.com"  # the web page (View history; CODETHREAD_PUBLIC_URL)
    run_snippets = true             # Run/Test/Fix in the bubblewrap sandbox
    run_workers = false             # runs go to `codethread worker` processes (PostgreSQL)
    repair_attempts = 2             # fix-and-test rounds of an automatic repair
    allow_any_model = false         # chat users may name any openai:/hf: model, not just these

    [models.qwen-local]
    ref = "openai:qwen2.5-coder:7b"
    base_url = "http://localhost:11434/v1"
    api_key_env = "TEAM_OLLAMA_KEY"   # optional: the variable that holds this server's key
    context_window = 32768
    description = "Qwen coder on the team's Ollama"
    extra_body = { top_k = 20 }       # more request fields, merged into the request as they are

    [models.thinker]                  # a reasoning model: the parameters it accepts
    ref = "openai:gpt-6.2-sol"
    token_limit_param = "max_completion_tokens"   # or "max_tokens" (the default)
    temperature = false               # sends no temperature (reasoning models refuse one)
    reasoning_effort = "high"         # none, minimal, low, medium, high, xhigh, max
    predicted_outputs = false         # the current code as a Predicted Output (gpt-4o/4.1)
    prompt_cache_key = true           # per-session cache key; default: only to OpenAI's API
    safety_identifier = true          # hashed user id; default: only to OpenAI's API

    [sandbox]                         # what every run can import (`codethread sandbox setup`)
    python_packages = ["numpy", "pandas", "matplotlib"]
    node_packages = ["lodash"]
    environment_dir = "/srv/codethread/sandbox"   # optional; see sandbox.environment

Each setting is stated once, as a :class:`Config` field: its type, its default, and (in the
field's metadata, see :func:`_source`) whether a TOML key and which environment variable set
it. The TOML keys, their type checks and :func:`load_config` are derived from those fields.
``[models.NAME]`` tables are read by :meth:`engines.Catalog.parse_entry`, the one place that
knows their keys.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NewType

import platformdirs

from bot.errors import ConfigError
from engines import Catalog, ModelSpec
from sandbox.environment import Settings as SandboxSettings
from storage import is_postgres_url

#: where people reach the bot's web page: an http(s) URL without a trailing slash
PublicUrl = NewType("PublicUrl", str)

__all__ = ["Config", "check_db_path", "config_file", "default_config_path", "load_config"]

_SOURCE = "codethread.source"  # the key of a field's metadata that says where it comes from


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a :class:`Config` field's value comes from, besides its default."""

    #: a top-level TOML key of the field's name sets it
    toml: bool = False
    #: this environment variable sets it, over the TOML file
    env: str | None = None
    #: the default when neither does, computed from the environment (instead of a fixed one)
    fallback: Callable[[Mapping[str, str]], Any] | None = None


def _source(
    *,
    toml: bool = False,
    env: str | None = None,
    fallback: Callable[[Mapping[str, str]], Any] | None = None,
) -> dict[str, _Source]:
    """Field metadata: ``field(default=..., metadata=_source(toml=True))``."""
    return {_SOURCE: _Source(toml=toml, env=env, fallback=fallback)}


_TOML = _source(toml=True)


def _default_model(env: Mapping[str, str]) -> str:
    # With an OpenAI key or an OpenAI-compatible server, use it; otherwise a small local model.
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "gpt-6.1-terra"
    return "qwen-coder"


def _default_db_path() -> Path:
    return platformdirs.user_data_path("codethread") / "codethread.db"


@dataclass(frozen=True, kw_only=True)
class Config:
    """The bot's settings. :func:`load_config` fills them; tests build one directly."""

    #: the SQLite file, or a ``postgresql://`` URL (kept as text: a path would fold its ``//``)
    db_path: Path | str = field(
        default_factory=_default_db_path, metadata=_source(env="CODETHREAD_DB")
    )
    #: the default model reference (catalog name or ``scheme:target``)
    model: str = field(metadata=_source(toml=True, env="CODETHREAD_MODEL", fallback=_default_model))
    #: the default language of new sessions
    language: str = field(default="python", metadata=_source(toml=True, env="CODETHREAD_LANGUAGE"))
    #: longer messages are refused before any engine call
    max_prompt_chars: int = field(default=8000, metadata=_TOML)
    #: requests per user and minute; 0 turns the limit off
    rate_limit_per_minute: int = field(default=20, metadata=_TOML)
    #: seconds for one whole answer
    turn_timeout: float = field(default=300.0, metadata=_TOML)
    #: seconds between edits of a streaming chat message (the platforms' rate budget)
    edit_interval: float = field(default=1.0, metadata=_TOML)
    #: seconds without a heartbeat before another process performs a durable turn again
    #: (its owner was killed or its host lost); see bot/jobs.py
    job_stale_after: float = field(default=30.0, metadata=_TOML)
    #: platform user ids allowed to use the bot; empty = everyone
    allowed_users: frozenset[str] = field(default=frozenset(), metadata=_TOML)
    #: channel ids the bot answers in; empty = everywhere
    allowed_channels: frozenset[str] = field(default=frozenset(), metadata=_TOML)
    #: the ``[models.NAME]`` tables, in file order: added to the built-in catalog
    models: tuple[ModelSpec, ...] = field(default=(), metadata=_TOML)
    #: Slack: the bot token (``xoxb-…``), the signing secret (HTTP mode), the app-level token
    #: (Socket Mode) and another Web API URL (a proxy, or the tests' fake)
    slack_bot_token: str | None = field(
        default=None, repr=False, metadata=_source(env="SLACK_BOT_TOKEN")
    )
    slack_signing_secret: str | None = field(
        default=None, repr=False, metadata=_source(env="SLACK_SIGNING_SECRET")
    )
    slack_app_token: str | None = field(
        default=None, repr=False, metadata=_source(env="SLACK_APP_TOKEN")
    )
    slack_api_url: str | None = field(default=None, metadata=_source(env="SLACK_API_URL"))
    #: Discord: the bot token, and a REST proxy URL (e.g. nirn-proxy's)
    discord_bot_token: str | None = field(
        default=None, repr=False, metadata=_source(env="DISCORD_BOT_TOKEN")
    )
    discord_api_url: str | None = field(default=None, metadata=_source(env="DISCORD_API_URL"))
    #: answer /code in Discord direct messages too
    discord_allow_dms: bool = field(default=False, metadata=_TOML)
    #: Discord sharding: the bot's shards in all, and the ones this process connects (all of
    #: them when empty); unset, one connection without shards
    discord_shard_count: int | None = field(
        default=None, metadata=_source(toml=True, env="DISCORD_SHARD_COUNT")
    )
    discord_shard_ids: tuple[int, ...] = field(
        default=(), metadata=_source(toml=True, env="DISCORD_SHARD_IDS")
    )
    #: Run/Test/Fix in the bubblewrap sandbox (when it works here)
    #: where people reach this bot's web page (``https://bot.example.com``): View history
    #: buttons link there; None: no such button
    public_url: PublicUrl | None = field(
        default=None, metadata=_source(toml=True, env="CODETHREAD_PUBLIC_URL")
    )
    run_snippets: bool = field(default=True, metadata=_TOML)
    #: runs are jobs for ``codethread worker`` processes (a shared PostgreSQL), not run here
    run_workers: bool = field(default=False, metadata=_TOML)
    #: fix-and-test rounds of an automatic repair
    repair_attempts: int = field(default=2, metadata=_TOML)
    #: chat users may name any openai:/hf: reference, not only catalog entries
    allow_any_model: bool = field(default=False, metadata=_TOML)
    #: the ``[sandbox]`` table: the packages ``codethread sandbox setup`` prepares for runs
    sandbox: SandboxSettings = field(default_factory=SandboxSettings, metadata=_TOML)


# -- reading values, by the field's type ------------------------------------------------

# A reader turns one TOML value into the field's value, or raises ValueError saying what the
# key takes ("must be an integer"; the caller adds the file, the key and the value).
_Reader = Callable[[Any], Any]


class _EntryError(ValueError):
    """A bad ``[models.NAME]`` table; the message already names the table and the key."""


def _read_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _url_from_env(value: str) -> PublicUrl:
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or url.endswith("://"):
        raise ValueError("must be an http:// or https:// URL, e.g. https://bot.example.com")
    return PublicUrl(url)


def _read_url(value: Any) -> PublicUrl:
    return _url_from_env(_read_str(value))


def _read_int(value: Any) -> int:
    # bool is an int subclass in Python; `max_prompt_chars = true` is still a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def _read_float(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a number")
    return float(value)


def _read_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _read_ids(value: Any) -> frozenset[str]:
    # Ids may be written as numbers (Discord's are); they are compared as strings.
    if not isinstance(value, list) or not all(
        isinstance(item, str | int) and not isinstance(item, bool) for item in value
    ):
        raise ValueError("must be a list of ids (strings or numbers)")
    return frozenset(map(str, value))


def _read_shard_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    ):
        raise ValueError("must be a list of shard numbers (0, 1, …)")
    return tuple(value)


def _read_models(value: Any) -> tuple[ModelSpec, ...]:
    if not isinstance(value, dict):
        raise ValueError("must be [models.NAME] tables")
    try:
        return tuple(Catalog.parse_entry(name, table) for name, table in value.items())
    except ValueError as err:
        raise _EntryError(str(err)) from None


def _read_sandbox(value: Any) -> SandboxSettings:
    try:
        return SandboxSettings.parse(value)
    except ValueError as err:
        raise _EntryError(str(err)) from None


_READERS: dict[object, _Reader] = {
    str: _read_str,
    int: _read_int,
    int | None: _read_int,  # TOML has no null: a key that is there sets a number
    PublicUrl | None: _read_url,
    float: _read_float,
    bool: _read_bool,
    frozenset[str]: _read_ids,
    tuple[int, ...]: _read_shard_ids,
    tuple[ModelSpec, ...]: _read_models,
    SandboxSettings: _read_sandbox,
}


def _number_from_env(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _numbers_from_env(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        numbers = (-1,)
    if any(number < 0 for number in numbers):
        raise ValueError("must be shard numbers separated by commas (0,1,…)")
    return numbers


#: variables read as numbers (the rest are text, or a path); ValueError says what they take
_ENV_READERS: dict[object, Callable[[str], Any]] = {
    int | None: _number_from_env,
    PublicUrl | None: _url_from_env,
    tuple[int, ...]: _numbers_from_env,
}


def _from_env(kind: object, value: str) -> Any:
    if kind is Path or (kind == Path | str and not is_postgres_url(value)):
        return Path(value).expanduser()
    reader = _ENV_READERS.get(kind)
    return value if reader is None else reader(value)


def _settings() -> tuple[dict[str, _Reader], dict[str, tuple[str, object]]]:
    """The TOML keys with their readers, and the environment variables with (field, type).

    Checked at import: a field whose type has no reader, or an environment variable for a
    type other than a string, a path or one of :data:`_ENV_READERS`, is a programming error
    found by any test.
    """
    hints = typing.get_type_hints(Config)
    toml_keys: dict[str, _Reader] = {}
    env_vars: dict[str, tuple[str, object]] = {}
    for config_field in fields(Config):
        source = config_field.metadata.get(_SOURCE, _Source())
        kind = hints[config_field.name]
        if source.toml:
            if kind not in _READERS:
                raise TypeError(f"Config.{config_field.name}: no TOML reader for {kind!r}")
            toml_keys[config_field.name] = _READERS[kind]
        if source.env is not None:
            if kind not in (str, str | None, Path, Path | str, *_ENV_READERS):
                raise TypeError(f"Config.{config_field.name}: {kind!r} from the environment")
            env_vars[source.env] = (config_field.name, kind)
    return toml_keys, env_vars


_TOML_KEYS, _ENV_VARS = _settings()


def _read_toml(path: Path) -> dict[str, Any]:
    """The settings a TOML file gives, checked and converted; ConfigError names file and key."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"CODETHREAD_CONFIG points to {path}, which does not exist.") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"Cannot read config {path}: {err}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        reader = _TOML_KEYS.get(key)
        if reader is None:
            known = ", ".join(_TOML_KEYS)
            raise ConfigError(f"{path}: unknown key {key!r}; known keys: {known}.")
        try:
            values[key] = reader(value)
        except _EntryError as err:
            raise ConfigError(f"{path}: {str(err).rstrip('.')}.") from None
        except ValueError as err:
            raise ConfigError(f"{path}: {key} {err}, not {value!r}.") from None
    return values


def default_config_path() -> Path:
    """Where the TOML file is looked for when ``CODETHREAD_CONFIG`` is unset
    (``~/.config/codethread/config.toml`` on Linux, by platformdirs)."""
    return platformdirs.user_config_path("codethread") / "config.toml"


def config_file(env: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file :func:`load_config` reads: ``CODETHREAD_CONFIG``, else the default path
    when that file exists, else none.

    The default path is looked at only for the process's own environment (``env`` None): an
    explicit mapping (a test's, an embedding program's) names every input itself, so a file in
    the user's home never leaks into it.
    """
    if env is not None:
        path = env.get("CODETHREAD_CONFIG")
        return Path(path).expanduser() if path else None
    if path := os.environ.get("CODETHREAD_CONFIG"):
        return Path(path).expanduser()
    default = default_config_path()
    return default if default.is_file() else None


def check_db_path(config: Config) -> None:
    """Refuse a ``CODETHREAD_DB`` whose directory does not exist (a typo would otherwise
    silently create a tree and an empty database); the default directory is created. A
    PostgreSQL URL is checked when it is opened."""
    if isinstance(config.db_path, str):
        return
    parent = config.db_path.parent
    if config.db_path != _default_db_path() and not parent.is_dir():
        raise ConfigError(
            f"CODETHREAD_DB is {config.db_path}, but the directory {parent} does not exist: "
            "create it, or unset CODETHREAD_DB for the default."
        )


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """The configuration from ``env`` (default ``os.environ``) and the TOML file it names
    (see :func:`config_file`).

    Raises :class:`ConfigError` (one line, naming the file and the key) for a missing or
    unreadable file, an unknown key, or a value of the wrong type or form.
    """
    path = config_file(env)
    env = os.environ if env is None else env
    values = _read_toml(path) if path else {}
    for variable, (name, kind) in _ENV_VARS.items():
        if env.get(variable):
            try:
                values[name] = _from_env(kind, env[variable])
            except ValueError as err:
                raise ConfigError(f"{variable} {err}, not {env[variable]!r}.") from None
    for config_field in fields(Config):
        source = config_field.metadata.get(_SOURCE, _Source())
        if config_field.name not in values and source.fallback is not None:
            values[config_field.name] = source.fallback(env)
    return Config(**values)
