"""/healthz and /metrics served by the real aiohttp app on loopback."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.server import make_web_app
from storage import SessionKey

from .conftest import CALLER, collect


async def test_healthz_and_metrics(app: App) -> None:
    session = await app.service.start(
        caller=CALLER,
        key=SessionKey(platform="console", workspace="local", channel="c", thread="t"),
        prompt="hi",
    )
    await collect(app.service.turn(session, CALLER, "hi"))
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        health = await client.get("/healthz")
        assert health.status == 200
        body = await health.json()
        assert body["status"] == "ok" and body["default_model"] == "fake:echo"
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        text = await metrics.text()
        assert 'codethread_turns_total{outcome="version"} 1.0' in text
        assert "codethread_answer_seconds_bucket" in text


async def test_healthz_is_503_when_the_default_model_failed(app: App) -> None:
    engine = app.engines.get(app.engines.resolve(None))
    engine._readiness = type(engine.readiness)(state="failed", detail="no weights")
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        health = await client.get("/healthz")
        assert health.status == 503
        assert (await health.json())["models"]["fake:echo"] == "failed: no weights"
