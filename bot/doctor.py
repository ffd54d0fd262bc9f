"""``codethread doctor``: what works here and what to set or install for what does not.

Each check gives one :class:`Check`, printed as one line (``✓ what: detail`` or ``✗ what:
reason; the fix``), so a user can go down the list and a support thread can paste it. The checks
only look: nothing is downloaded, no model weights are loaded and no message is posted. The
ones that ask a server (the default model's, Slack's ``auth.test``, Discord's ``users/@me``) do
so once, with a short timeout, at the URLs the bot itself would use (``OPENAI_BASE_URL``,
``SLACK_API_URL``, ``DISCORD_API_URL``), so tests point them at loopback fakes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from bot.config import Config, check_db_path, config_file
from bot.errors import UserError
from engines import Catalog, Engine, EngineError, ModelSpec, create_engine

__all__ = ["TIMEOUT", "Check", "run_checks"]

#: seconds each server gets to answer
TIMEOUT = 5.0
#: discord.py's ``Route.BASE`` (not imported: discord.py takes a while to import)
DISCORD_API = "https://discord.com/api/v10"
_LOCAL_SCHEMES = ("hf", "hf-chatml")


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    #: what was checked, a few words ("database", "Slack")
    what: str
    #: what was found; when not ok, the reason and then the fix
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.what}: {self.detail}"


async def run_checks(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    engine_factory: Callable[[ModelSpec], Engine] = create_engine,
) -> list[Check]:
    """Every check, in a fixed order; the ones that wait on a server run concurrently."""
    env = os.environ if env is None else env
    spec = _default_spec(config)
    checks = [_config(env)]
    if isinstance(spec, Check):
        checks.append(spec)
        remote = [_database(config), _sandbox(config)]
    else:
        checks.append(_huggingface(spec, env))
        remote = [_engine(spec, engine_factory), _database(config), _sandbox(config)]
    if config.slack_bot_token:
        remote.append(_slack(config))
    if config.discord_bot_token:
        remote.append(_discord(config))
    checks += await asyncio.gather(*remote)
    checks.append(_log())
    return checks


def _default_spec(config: Config) -> ModelSpec | Check:
    try:
        return Catalog.builtin().with_specs(config.models).resolve(config.model)
    except EngineError as err:
        return Check(False, "model", f"{err} Set CODETHREAD_MODEL or `model` in the config.")


def _config(env: Mapping[str, str]) -> Check:
    path = config_file(None if env is os.environ else env)
    if path is None:
        hint = f"none (optional: {_home(platformdirs.user_config_path('codethread'))}/config.toml)"
        return Check(True, "config file", hint)
    return Check(True, "config file", _home(path))


async def _engine(spec: ModelSpec, factory: Callable[[ModelSpec], Engine]) -> Check:
    what = f"model {spec.name}"
    via = f" ({spec.ref})" if spec.ref != spec.name else ""
    try:
        engine = factory(spec)
    except EngineError as err:
        return Check(False, what, str(err))
    try:
        if engine.loads_weights:  # loading takes minutes and gigabytes: say what will happen
            return Check(True, what, f"loads into this process when the bot starts{via}")
        try:
            await asyncio.wait_for(engine.start(), TIMEOUT)
            await asyncio.wait_for(engine.probe(), TIMEOUT)  # a server: does it answer now?
        except TimeoutError:
            return Check(False, what, f"no answer within {TIMEOUT:.0f} s{via}")
        except EngineError as err:
            return Check(False, what, str(err))
        readiness = engine.readiness
        if readiness.state == "ready":
            return Check(True, what, f"ready{via}")
        return Check(False, what, f"{readiness}{via}")
    finally:
        await engine.aclose()


def _huggingface(spec: ModelSpec, env: Mapping[str, str]) -> Check:
    """The Hugging Face cache and offline mode, and whether a local default model is there."""
    local = spec.scheme in _LOCAL_SCHEMES
    offline = env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    mode = "HF_HUB_OFFLINE=1: only cached models load" if offline else "online"
    if importlib.util.find_spec("huggingface_hub") is None:
        if local:
            return Check(
                False,
                "Hugging Face",
                f"{spec.name} needs the local extra: pip install -e '.[local]' (see the README)",
            )
        return Check(True, "Hugging Face", "not installed (only needed for hf: models)")
    from huggingface_hub import constants, try_to_load_from_cache

    cache = Path(env.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)
    where = f"cache {_home(cache)}, {mode}"
    if not _creatable(cache):
        return Check(False, "Hugging Face", f"{where}; cannot write there: set HF_HOME")
    if not local:
        return Check(True, "Hugging Face", where)
    target = spec.target
    if target.startswith((".", "/", "~")) or Path(target).expanduser().is_dir():
        folder = Path(target).expanduser()
        if (folder / "config.json").is_file():
            return Check(True, "Hugging Face", f"{spec.name} from the folder {folder}")
        return Check(False, "Hugging Face", f"{folder} holds no model (no config.json)")
    try:  # a path when cached; None or a "known missing" marker otherwise
        cached = isinstance(try_to_load_from_cache(target, "config.json", cache_dir=cache), str)
    except ValueError:  # not a hub id (HFValidationError); loading will say so
        cached = False
    if cached:
        return Check(True, "Hugging Face", f"{where}; {target} is in the cache")
    if offline:
        return Check(
            False,
            "Hugging Face",
            f"{target} is not in the cache and HF_HUB_OFFLINE is set: run `hf download {target}`"
            " with internet, unset HF_HUB_OFFLINE, or set OPENAI_API_KEY / OPENAI_BASE_URL",
        )
    return Check(True, "Hugging Face", f"{where}; {target} downloads when the bot first starts")


async def _database(config: Config) -> Check:
    from storage import Store

    path = config.db_path
    try:
        check_db_path(config)
        store = await Store.open(path)
        await store.close()
    except UserError as err:
        return Check(False, "database", str(err))
    except Exception as err:  # sqlite3.Error, OSError: whatever stops the bot from opening it
        where = "PostgreSQL" if isinstance(path, str) else str(path)  # never a URL's password
        return Check(False, "database", f"cannot open {where}: {err}; set CODETHREAD_DB")
    if isinstance(path, str):
        return Check(True, "database", "PostgreSQL reachable, schema current")
    mode = stat.S_IMODE(path.stat().st_mode)
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return Check(False, "database", f"{path} or its folder is read-only: set CODETHREAD_DB")
    if mode & 0o077:
        return Check(
            False,
            "database",
            f"{path} is readable by other users ({mode:04o}): chmod 600 {path}",
        )
    return Check(True, "database", f"{_home(path)} (writable, {mode:04o})")


async def _sandbox(config: Config) -> Check:
    if not config.run_snippets:
        return Check(True, "sandbox", "off (run_snippets = false)")
    from sandbox import Sandbox

    reason = await Sandbox().check()
    if reason:
        return Check(False, "sandbox", reason)
    return Check(True, "sandbox", "bubblewrap works here (namespaces, limits)")


async def _slack(config: Config) -> Check:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(
        token=config.slack_bot_token,
        base_url=config.slack_api_url or AsyncWebClient.BASE_URL,
        timeout=int(TIMEOUT),
    )
    try:
        answer = await client.auth_test()
    except SlackApiError as err:
        code = err.response.get("error", "an error")
        return Check(
            False,
            "Slack",
            f"auth.test answered {code}: copy the Bot User OAuth Token (xoxb-…) from "
            "OAuth & Permissions into SLACK_BOT_TOKEN",
        )
    except Exception as err:  # aiohttp.ClientError, TimeoutError: the API is out of reach
        return Check(False, "Slack", f"cannot reach {client.base_url}: {_why(err)}")
    mode = "Socket Mode" if config.slack_app_token else "HTTP mode"
    if not config.slack_app_token and not config.slack_signing_secret:
        return Check(
            False,
            "Slack",
            "the token works, but set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
            "(HTTP mode)",
        )
    return Check(
        True, "Slack", f"the token works (@{answer.get('user')} in {answer.get('team')}, {mode})"
    )


async def _discord(config: Config) -> Check:
    import aiohttp

    base = (config.discord_api_url or DISCORD_API).rstrip("/")
    headers = {"Authorization": f"Bot {config.discord_bot_token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
            http.get(f"{base}/users/@me", headers=headers) as response,
        ):
            if response.status == 401:
                return Check(
                    False,
                    "Discord",
                    "the token was refused (401): Reset Token under Bot in the developer "
                    "portal and put it in DISCORD_BOT_TOKEN",
                )
            if response.status != 200:
                return Check(False, "Discord", f"users/@me answered HTTP {response.status}")
            me = await response.json()
    except Exception as err:  # aiohttp.ClientError, TimeoutError, a body that is not JSON
        return Check(False, "Discord", f"cannot reach {base}: {_why(err)}")
    return Check(True, "Discord", f"the token works ({me.get('username')}, id {me.get('id')})")


def _log() -> Check:
    return Check(True, "log", _home(platformdirs.user_log_path("codethread") / "codethread.log"))


def _creatable(path: Path) -> bool:
    """Whether ``path`` is, or could be made, a writable directory."""
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _home(path: Path) -> str:
    """``path`` with the home directory as ``~``, the way people type it."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def _why(err: BaseException) -> str:
    return str(err) or type(err).__name__
