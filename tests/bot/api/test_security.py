"""What the security review asked of the API: every answer private and unsniffed, a run's
files never served as a type the page would run, and no megabyte upload read for a caller
nobody knows. On the real app (the one ``serve`` runs) on 127.0.0.1; the runs are written to
the store directly, so no sandbox is needed."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp.test_utils import TestClient

from bot.api import MAX_FILE_BODY
from bot.api.runs import PICTURES
from bot.app import App
from bot.present.views import IMAGE_SUFFIXES
from bot.values import Caller
from bot.web import auth as web_auth

from .conftest import SSE, create

Client = TestClient[Any, Any]
ALICE = Caller(platform="slack", workspace="T1", user="UALICE", channel="C1")

#: a run's files by name: what it must be served as, and how
SERVED = {
    "x.js": ("application/octet-stream", "attachment"),
    "page.html": ("application/octet-stream", "attachment"),
    "logo.svg": ("application/octet-stream", "attachment"),
    "data.csv": ("application/octet-stream", "attachment"),
    "noext": ("application/octet-stream", "attachment"),
    "plot.png": ("image/png", "inline"),
    "Photo.JPEG": ("image/jpeg", "inline"),
    "a.gif": ("image/gif", "inline"),
    "b.webp": ("image/webp", "inline"),
}


def private(response: Any) -> None:
    assert response.headers["Cache-Control"] == "no-store", response.url
    assert response.headers["X-Content-Type-Options"] == "nosniff", response.url


async def test_every_api_answer_is_private_and_unsniffed(
    client: Client, auth: dict[str, str]
) -> None:
    made = await create(client, auth, "print one")
    sid = made["session"]["id"]
    for response in (
        await client.get("/api/sessions", headers=auth),
        await client.get(f"/api/sessions/{sid}", headers=auth),
        await client.get("/api/sessions"),  # 401
        await client.get("/api/sessions/999999", headers=auth),  # 404
        await client.get("/api/nothing/here", headers=auth),  # aiohttp's 404, as JSON
        await client.patch("/api/sessions", headers=auth),  # 405
        await client.get("/api/openapi.json"),
        await client.post(
            f"/api/sessions/{sid}/turns", json={"text": "x"}, headers={**auth, **SSE}
        ),
    ):
        private(response)
        await response.read()
    static = await client.get("/static/app.css")  # the page's own caching is its own
    assert "immutable" in static.headers["Cache-Control"]


async def test_a_runs_files_are_pictures_or_downloads(
    app: App, client: Client, auth: dict[str, str]
) -> None:
    """A snippet's ``x.js`` served as ``text/javascript`` from our origin would pass the
    page's ``script-src 'self'``: only raster pictures keep a type, everything else is a
    download of bytes."""
    assert set(PICTURES) == set(IMAGE_SUFFIXES)  # what the page shows as <img>, and no more
    sid = (await create(client, auth, "make files"))["session"]["id"]
    version = await app.store.get_version(sid)
    assert version is not None
    run = await app.store.add_run(
        version.id, kind="run", status="ok", exit_code=0, stdout="", stderr="",
        duration_ms=1, peak_memory_kb=None, limit_hit=None, compile_output="",
        artifacts=[(name, b"alert(1)") for name in SERVED],
    )  # fmt: skip
    for name, (kind, disposition) in SERVED.items():
        url = f"/api/sessions/{sid}/runs/{run.id}/artifacts/{name}"
        got = await client.get(url, headers=auth)
        assert got.status == 200, name
        assert got.headers["Content-Type"] == kind, name
        assert got.headers["Content-Disposition"] == f'{disposition}; filename="{name}"'
        assert got.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        private(got)
        assert await got.read() == b"alert(1)"


async def status_of_unsent_upload(client: Client, headers: str) -> bytes:
    """The status line answering a file PUT that announces 3 MiB and sends none of it: a
    server that waited for the body would answer 408 only when its body time ran out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            f"PUT /api/sessions/1/files/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Length: {MAX_FILE_BODY}\r\n\r\n".encode()
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 60)
    finally:
        writer.close()


async def test_an_upload_from_nobody_is_refused_unread(
    app: App, client: Client, auth: dict[str, str]
) -> None:
    assert (await status_of_unsent_upload(client, "")).startswith(b"HTTP/1.1 401")
    bad = "Authorization: Bearer nope\r\n"
    assert (await status_of_unsent_upload(client, bad)).startswith(b"HTTP/1.1 401")
    forged = f"Cookie: {web_auth.COOKIE}={web_auth.session_cookie(b'f' * 32, ALICE)}\r\n"
    assert (await status_of_unsent_upload(client, forged)).startswith(b"HTTP/1.1 401")
    refused = await client.put("/api/sessions/1/files/a.txt", data=b"1")
    assert refused.status == 401 and "Bearer" in (await refused.json())["error"]
    private(refused)
    sid = (await create(client, auth, "files"))["session"]["id"]
    put = await client.put(
        f"/api/sessions/{sid}/files/a.txt", data=io.BytesIO(b"x" * 2_000_000), headers=auth
    )
    assert put.status == 200, await put.text()  # a known caller's upload is read in full
