"""compose.yaml and the Dockerfile refer to what exists (Docker itself is not available here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from bot.cli import main

ROOT = Path(__file__).resolve().parents[1]
DESIGN_ENV = {
    "CODETHREAD_DB", "CODETHREAD_CONFIG", "CODETHREAD_MODEL", "CODETHREAD_LANGUAGE",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN", "SLACK_API_URL", "DISCORD_BOT_TOKEN", "DISCORD_API_URL",
}  # fmt: skip


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services, volumes = compose["services"], compose["volumes"]
    bot = services["bot"]
    assert (ROOT / bot["build"] / "Dockerfile").is_file()
    assert bot["command"][:2] == ["codethread", "serve"]
    port = bot["command"][bot["command"].index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in bot["ports"])
    for mount in bot["volumes"] + services["vllm"]["volumes"]:
        assert mount.split(":")[0] in volumes
    assert {"/data", "/hf-cache"} <= {m.split(":")[1] for m in bot["volumes"]}
    assert bot["environment"]["CODETHREAD_DB"].startswith("/data/")
    codethread_vars = {
        k
        for k in bot["environment"]
        if k.split("_")[0] in {"CODETHREAD", "OPENAI", "SLACK", "DISCORD"}
    }
    assert codethread_vars <= DESIGN_ENV
    assert services["vllm"]["profiles"] == ["gpu"] and "profiles" not in bot


def test_dockerfile_copies_every_package_and_runs_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("bot", "engines", "storage", "sandbox"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.M) and (ROOT / package).is_dir()
    assert 'CMD ["codethread", "serve"' in dockerfile
    assert "serve" in main.commands
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
