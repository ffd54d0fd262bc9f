"""The API on the real aiohttp app, served on 127.0.0.1, with the FakeEngine behind it.

``client`` is an aiohttp test client of ``make_web_app(app)`` (the app ``serve`` runs);
``token`` is a live token of alice's and ``auth`` the headers that send it. :func:`events`
parses a server-sent event stream as a client would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot import tokens
from bot.app import App
from bot.server import make_web_app

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def client(app: App) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
        yield client


async def bearer(app: App, user: str) -> dict[str, str]:
    text, _ = await tokens.issue(app.store, user, days=1)
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture
async def auth(app: App) -> dict[str, str]:
    """alice's headers."""
    return await bearer(app, "alice")


async def events(response: ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a text/event-stream response: (event name, parsed data)."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    found: list[tuple[str, dict[str, Any]]] = []
    kind, data = "message", list[str]()  # the event being read: its name, its data lines
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                found.append((kind, json.loads("\n".join(data))))
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return found


async def create(client: TestClient[Any, Any], auth: dict[str, str], prompt: str) -> dict[str, Any]:
    """A new session of ``prompt`` (its first version made); the 201's body."""
    response = await client.post("/api/sessions", json={"prompt": prompt}, headers=auth)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body
