"""compose.yaml and the Dockerfile refer to what exists (Docker itself is not available here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from bot.cli import main
from engines import Catalog

ROOT = Path(__file__).resolve().parents[1]
DESIGN_ENV = {
    "CODETHREAD_DB", "CODETHREAD_CONFIG", "CODETHREAD_MODEL", "CODETHREAD_LANGUAGE",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN", "SLACK_API_URL", "DISCORD_BOT_TOKEN", "DISCORD_API_URL",
    "DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS",
    "CODETHREAD_PUBLIC_URL",  # the web page's address (issue 16; DESIGN.md to follow)
}  # fmt: skip
_DEFAULT = re.compile(r"^\$\{(\w+):-(.*)\}$")


def default(value: str) -> str:
    """What compose makes of ``${NAME:-default}`` with NAME unset (a plain value as it is)."""
    found = _DEFAULT.match(value)
    return found[2] if found else value


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services, volumes = compose["services"], compose["volumes"]
    bot = services["bot"]
    assert (ROOT / bot["build"] / "Dockerfile").is_file()
    assert bot["command"][:2] == ["codethread", "serve"]
    port = bot["command"][bot["command"].index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in bot["ports"])
    for mount in bot["volumes"] + services["vllm"]["volumes"] + services["postgres"]["volumes"]:
        assert mount.split(":")[0] in volumes
    assert {"/data", "/hf-cache"} <= {m.split(":")[1] for m in bot["volumes"]}
    assert default(bot["environment"]["CODETHREAD_DB"]).startswith("/data/")
    codethread_vars = {
        k
        for k in bot["environment"]
        if k.split("_")[0] in {"CODETHREAD", "OPENAI", "SLACK", "DISCORD"}
    }
    assert codethread_vars <= DESIGN_ENV
    assert services["vllm"]["profiles"] == ["gpu"] and "profiles" not in bot
    assert services["postgres"]["profiles"] == ["postgres"]


def test_dockerfile_copies_every_package_and_runs_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("bot", "engines", "storage", "sandbox"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.M) and (ROOT / package).is_dir()
    assert 'CMD ["codethread", "serve"' in dockerfile
    assert "serve" in main.commands
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_the_gpu_profile_starts_the_bot_after_a_pinned_healthy_vllm() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    bot, vllm = services["bot"], services["vllm"]
    name, _, tag = vllm["image"].partition(":")
    assert name == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), "pin a release"
    health = vllm["healthcheck"]
    assert "/health" in " ".join(health["test"]) and health["test"][0] == "CMD"
    assert {"interval", "timeout", "retries", "start_period"} <= set(health)
    # the bot waits for a healthy vLLM, and starts without the profile (required: false)
    assert bot["depends_on"]["vllm"] == {"condition": "service_healthy", "required": False}
    assert "HF_TOKEN" in vllm["environment"] and "HUGGING_FACE_HUB_TOKEN" not in vllm["environment"]


def test_the_served_model_is_a_catalog_entry_and_no_catalog_name() -> None:
    vllm = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["vllm"]
    command = vllm["command"]
    served = command[command.index("--served-model-name") + 1]
    catalog = Catalog.builtin()
    assert served not in catalog.names()  # `CODETHREAD_MODEL=<served>` must not mean another
    [entry] = [spec for spec in catalog if spec.ref == f"openai:{served}"]
    assert entry.base_url == "http://vllm:8000/v1"
    assert entry.context_window == int(command[command.index("--max-model-len") + 1])
    # the entry's key variable is the one vLLM checks, with the same default on both sides
    bot_env = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["bot"]["environment"]
    assert entry.api_key_env == "VLLM_API_KEY"
    assert bot_env["VLLM_API_KEY"] == vllm["environment"]["VLLM_API_KEY"]


def test_the_postgres_profile_is_a_pinned_healthy_postgres_the_replicas_share() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot, postgres = compose["services"]["bot"], compose["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    name, _, tag = postgres["image"].partition(":")
    assert name == "postgres" and re.fullmatch(r"16(\.\d+)?", tag), "the official image, pinned"
    env = postgres["environment"]
    assert env["POSTGRES_USER"] == env["POSTGRES_DB"] == "codethread"
    password = _DEFAULT.match(env["POSTGRES_PASSWORD"])
    assert password and password[1] == "POSTGRES_PASSWORD", "from .env, a default for local use"
    [data] = postgres["volumes"]
    volume, path = data.split(":")
    assert volume in compose["volumes"] and path == "/var/lib/postgresql/data"
    assert "ports" not in postgres  # only the compose network reaches it
    health = postgres["healthcheck"]
    assert health["test"][:2] == ["CMD", "pg_isready"] and {"interval", "retries"} <= set(health)
    test = health["test"]
    assert test[test.index("--username") + 1] == env["POSTGRES_USER"]
    assert test[test.index("--dbname") + 1] == env["POSTGRES_DB"]
    # the bot waits for it with the profile, starts without it, and can be pointed at it
    assert bot["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    db = _DEFAULT.match(bot["environment"]["CODETHREAD_DB"])
    assert db and db[1] == "CODETHREAD_DB"
    # --scale bot=2 needs a host port per replica: a range in CODETHREAD_PORTS
    [ports] = bot["ports"]
    host, _, container = ports.rpartition(":")
    published = _DEFAULT.match(host)
    assert published and published.groups() == ("CODETHREAD_PORTS", "8080")
    assert container == "8080"


def test_the_readme_starts_replicas_the_way_compose_yaml_allows() -> None:
    readme = (ROOT / "README.md").read_text()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    command = re.search(r"^COMPOSE_PROFILES=postgres .*--scale bot=2$", readme, re.M)
    assert command, "the README shows how to start two replicas"
    assert "CODETHREAD_PORTS=8080-8081" in command[0]
    assert "postgresql://codethread:" in readme and "@postgres/codethread" in readme
    assert "postgres" in compose["services"]
    for variable in ("DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS", "POSTGRES_PASSWORD"):
        assert variable in readme


def test_the_workers_profile_runs_codethread_worker_on_the_shared_database() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    worker = compose["services"]["worker"]
    assert worker["profiles"] == ["workers"] and worker["command"] == ["codethread", "worker"]
    assert _DEFAULT.match(worker["environment"]["CODETHREAD_DB"])
    assert worker["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    # the sandbox needs the same namespaces as the bot's
    assert worker["security_opt"] == compose["services"]["bot"]["security_opt"]
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0 and "run_workers" in result.output
