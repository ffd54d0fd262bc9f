"""/healthz and /metrics served by the real aiohttp app on loopback."""

from __future__ import annotations

import asyncio

import pytest
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


async def test_livez_readyz_and_the_gauges(app: App) -> None:
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        live = await client.get("/livez")
        assert live.status == 200 and (await live.json()) == {"status": "ok"}
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200, body
        assert body["checks"]["database"] == {"ok": True, "detail": ""}
        assert body["checks"]["model"]["ok"] and "fake:echo" in body["checks"]["model"]["detail"]
        text = await (await client.get("/metrics")).text()
        assert "codethread_turns_in_flight 0.0" in text
        assert 'codethread_engine_queue{model="fake:echo"} 0.0' in text
        assert "codethread_build_info{" in text
        assert "codethread_jobs_queued 0.0" in text


async def test_readyz_names_a_failed_adapter_and_a_closed_database(app: App) -> None:
    from bot.adapters.base import AdapterHealth, ChatAdapter

    class Broken(ChatAdapter):
        name = "slack"

        async def start(self) -> None: ...
        async def drain(self) -> None: ...
        async def aclose(self) -> None: ...

    broken = Broken()
    broken.health = AdapterHealth("failed", "invalid_auth: the bot token was revoked")
    app.adapters.append(broken)
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        body = await (await client.get("/readyz")).json()
        assert body["checks"]["slack"] == {
            "ok": False,
            "detail": "failed: invalid_auth: the bot token was revoked",
        }
        await app.store.close()
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert not (await ready.json())["checks"]["database"]["ok"]
    app.adapters.remove(broken)


async def test_slow_or_oversized_requests_are_cut_off(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import server

    monkeypatch.setattr(server, "BODY_SECONDS", 0.3)
    runner = server.runner(make_web_app(app))
    await runner.setup()
    site = __import__("aiohttp").web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 413"), status
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 408"), status
        writer.close()
    finally:
        await runner.cleanup()
