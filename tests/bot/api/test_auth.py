"""Bearer tokens and the web page's cookie hook, on the real app: who may call the API."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import tokens
from bot.api import COOKIE_AUTH, CsrfRefused
from bot.app import App
from bot.server import make_web_app
from bot.values import Caller

from .conftest import create

Client = TestClient[Any, Any]


async def test_missing_malformed_unknown_expired_and_revoked_tokens_are_401(
    app: App, client: Client
) -> None:
    text, _ = await tokens.issue(app.store, "alice", days=1)
    stale = tokens.new_token()
    await app.store.add_token("alice", tokens.hash_token(stale), expires_at=time.time() - 60)
    revoked, old = await tokens.issue(app.store, "alice", days=None)
    assert await app.store.revoke_token(old.id)
    for headers in [
        {},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {tokens.new_token()}"},
        {"Authorization": f"Bearer {stale}"},
        {"Authorization": f"Bearer {revoked}"},
    ]:
        response = await client.get("/api/sessions", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert list(body) == ["error"] and "codethread tokens create" in body["error"]
    ok = await client.get("/api/sessions", headers={"Authorization": f"Bearer {text}"})
    assert ok.status == 200 and await ok.json() == {"sessions": []}
    assert (await client.get("/api/openapi.json")).status == 200  # the description is public


async def test_a_revoked_token_stops_working_at_once(app: App, client: Client) -> None:
    text, token = await tokens.issue(app.store, "alice", days=1)
    auth = {"Authorization": f"Bearer {text}"}
    made = await create(client, auth, "hello")
    assert await app.store.revoke_token(token.id)
    response = await client.get(f"/api/sessions/{made['session']['id']}", headers=auth)
    assert response.status == 401


async def test_the_cookie_hook_is_asked_without_a_bearer_and_checks_csrf(app: App) -> None:
    asked: list[str] = []

    async def cookie(request: web.Request) -> Caller | None:
        asked.append(request.method)
        if request.cookies.get("who") != "carol":
            return None
        if request.method != "GET" and request.headers.get("X-CSRF-Token") != "good":
            raise CsrfRefused()
        return Caller(platform="api", workspace="api", user="carol")

    web_app = make_web_app(app)
    web_app[COOKIE_AUTH] = cookie
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
        nobody = await client.get("/api/sessions")
        assert nobody.status == 401
        client.session.cookie_jar.update_cookies({"who": "carol"})
        listed = await client.get("/api/sessions")
        assert listed.status == 200
        forged = await client.post("/api/sessions", json={"prompt": "hi"})
        assert forged.status == 403
        assert (await forged.json())["error"].startswith("This request needs the page's X-CSRF")
        made = await client.post(
            "/api/sessions", json={"prompt": "hi"}, headers={"X-CSRF-Token": "good"}
        )
        assert made.status == 201
        assert (await made.json())["session"]["owner"] == "carol"
        text, _ = await tokens.issue(app.store, "dave", days=1)
        asked.clear()
        as_dave = await client.get("/api/sessions", headers={"Authorization": f"Bearer {text}"})
        assert (await as_dave.json())["sessions"] == [] and asked == []  # a bearer wins


async def test_no_token_reaches_the_logs(
    app: App, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    text, _ = await tokens.issue(app.store, "alice", days=1)
    wrong = tokens.new_token()
    await client.get("/api/sessions", headers={"Authorization": f"Bearer {wrong}"})
    await create(client, {"Authorization": f"Bearer {text}"}, "log me")
    await client.post(
        "/api/sessions", json={"prompt": ""}, headers={"Authorization": f"Bearer {text}"}
    )
    assert caplog.records and text not in caplog.text and wrong not in caplog.text
