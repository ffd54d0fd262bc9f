"""A streamed turn whose client hangs up still finishes, and the session stays usable; a turn
in flight when the server stops is ended cleanly (its place in line freed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession
from aiohttp.test_utils import TestClient, TestServer

from bot import api
from bot.app import App
from bot.server import make_web_app
from bot.values import Caller, Done
from engines import FakeEngine, GenerationRequest, Usage

from ..conftest import collect, fenced
from .conftest import SSE

ALICE = Caller(platform="api", workspace="api", user="alice")


class GatedEngine(FakeEngine):
    """Streams the first piece of each answer, then waits for :attr:`gate` for the rest."""

    def __init__(self) -> None:
        super().__init__(lambda r: fenced("print('gated')\n" * 4), chunk_size=8)
        self.gate = asyncio.Event()
        self.first = asyncio.Event()

    async def _stream(self, request: GenerationRequest, usage: Usage) -> AsyncGenerator[str]:
        async for index, chunk in _enumerate(super()._stream(request, usage)):
            yield chunk
            if index == 0:
                self.first.set()
                await self.gate.wait()


async def _enumerate(chunks: AsyncGenerator[str]) -> AsyncGenerator[tuple[int, str]]:
    index = 0
    async for chunk in chunks:
        yield index, chunk
        index += 1


@pytest.fixture
def fake() -> FakeEngine:
    return GatedEngine()


async def test_a_client_that_hangs_up_mid_stream_leaves_the_turn_to_finish(
    app: App, fake: GatedEngine, auth: dict[str, str]
) -> None:
    server = TestServer(make_web_app(app), host="127.0.0.1")
    async with TestClient(server) as client:
        async with ClientSession() as other:  # a connection of its own, closed mid-answer
            response = await other.post(
                server.make_url("/api/sessions"), json={"prompt": "gate"}, headers={**auth, **SSE}
            )
            async with asyncio.timeout(10):
                async for line in response.content:
                    if line.startswith(b"event: delta"):
                        break
            response.close()
        fake.gate.set()
        async with asyncio.timeout(10):
            while not (listed := await (await client.get("/api/sessions", headers=auth)).json())[
                "sessions"
            ]:
                await asyncio.sleep(0.02)
        sid = listed["sessions"][0]["id"]
        shown = await (await client.get(f"/api/sessions/{sid}", headers=auth)).json()
        assert shown["version"]["code"] == "print('gated')\n" * 3 + "print('gated')"
        again = await client.post(f"/api/sessions/{sid}/turns", json={"text": "more"}, headers=auth)
        assert again.status == 200 and (await again.json())["version"]["number"] == 2


async def test_a_turn_in_flight_at_shutdown_is_ended_and_frees_its_line(
    app: App, fake: GatedEngine, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "DRAIN_SECONDS", 0.05)
    server = TestServer(make_web_app(app), host="127.0.0.1")
    async with TestClient(server) as client:
        fake.gate.set()
        made = await client.post("/api/sessions", json={"prompt": "first"}, headers=auth)
        sid = (await made.json())["session"]["id"]
        fake.gate.clear()
        fake.first.clear()
        pending = asyncio.create_task(
            client.post(f"/api/sessions/{sid}/turns", json={"text": "stuck"}, headers=auth)
        )
        async with asyncio.timeout(10):
            await fake.first.wait()
        # the server stops while the turn waits on the model
    with pytest.raises(ClientError):  # the server went away mid-answer
        await pending
    session = await app.service.get(sid)
    fake.gate.set()
    async with asyncio.timeout(10):  # the stopped turn left the line: a new one goes ahead
        events = await collect(app.service.turn(session, ALICE, "after the restart"))
    assert isinstance(events[-1], Done) and events[-1].version.number == 2


async def test_stream_events_are_single_line_json(
    app: App, client: TestClient[Any, Any], fake: GatedEngine, auth: dict[str, str]
) -> None:
    fake.gate.set()
    fake.responder = lambda r: fenced(
        "s = 'a\\nb'\nprint(s)  # \u2028 unicode ✓", note="Line\nbreaks"
    )
    response = await client.post(
        "/api/sessions", json={"prompt": "odd text"}, headers={**auth, **SSE}
    )
    raw = (await response.read()).decode()
    blocks = [block for block in raw.split("\n\n") if block]
    for block in blocks:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        json.loads(data[6:])
    assert blocks[-1].startswith("event: done")
