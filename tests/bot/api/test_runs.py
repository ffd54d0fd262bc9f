"""Runs and files through the HTTP API, in the real sandbox (skipped where bubblewrap cannot
run): an uploaded input file, stdin and arguments; the files a run made, listed and served."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, build
from bot.config import Config
from bot.files import MAX_FILE_BYTES
from bot.server import make_web_app
from engines import FakeEngine, GenerationRequest

from ..conftest import fenced
from .conftest import bearer, create

Client = TestClient[Any, Any]

PROGRAM = """\
import sys
rows = open("data.csv").read().splitlines()
name = sys.stdin.read().strip()
print("hello", name, " ".join(sys.argv[1:]), len(rows))
open("out.csv", "w").write("a,b\\n1,2\\n")
open("plot.png", "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(16))
"""
TESTS = """\
import unittest
from snippet import add

class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""


@pytest.fixture(autouse=True)
def _needs_sandbox(app: App) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")


def answers(fake: FakeEngine, code: str) -> None:
    def respond(request: GenerationRequest) -> str:
        if request.messages[0].content.startswith("You write unit tests"):
            return fenced(TESTS)
        return fenced(code)

    fake.responder = respond


async def test_a_run_with_a_file_stdin_and_args_and_its_artifacts(
    app: App, client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    answers(fake, PROGRAM)
    sid = (await create(client, auth, "greet and count rows"))["session"]["id"]
    put = await client.put(
        f"/api/sessions/{sid}/files/data.csv", data=b"x,y\n1,2\n3,4\n", headers=auth
    )
    assert put.status == 200, await put.text()
    assert (await put.json())["file"]["name"] == "data.csv"
    listed = await (await client.get(f"/api/sessions/{sid}/files", headers=auth)).json()
    assert [(f["name"], f["size"]) for f in listed["files"]] == [("data.csv", 12)]

    response = await client.post(
        f"/api/sessions/{sid}/runs", json={"stdin": "bob\n", "args": ["a", "b c"]}, headers=auth
    )
    assert response.status == 200, await response.text()
    run = (await response.json())["run"]
    assert run["outcome"] == "ok" and run["exit_code"] == 0, run
    assert run["stdout"] == "hello bob a b c 3\n"
    assert run["stdin"] == "bob\n" and run["args"] == ["a", "b c"]
    assert run["summary"] == f"Run of version 1 of #{sid} passed"
    names = {a["name"]: a["url"] for a in run["artifacts"]}
    assert set(names) == {"out.csv", "plot.png"}
    assert names["out.csv"] == f"/api/sessions/{sid}/runs/{run['id']}/artifacts/out.csv"

    runs = (await (await client.get(f"/api/sessions/{sid}/runs", headers=auth)).json())["runs"]
    assert [(r["id"], r["version"], r["outcome"]) for r in runs] == [(run["id"], 1, "ok")]
    assert runs[0]["artifacts"] == run["artifacts"]

    csv = await client.get(names["out.csv"], headers=auth)
    assert csv.status == 200 and await csv.read() == b"a,b\n1,2\n"
    assert csv.headers["Content-Type"] == "application/octet-stream"  # no type the page runs
    assert csv.headers["Content-Disposition"] == 'attachment; filename="out.csv"'
    assert csv.headers["X-Content-Type-Options"] == "nosniff"
    png = await client.get(names["plot.png"], headers=auth)
    assert png.headers["Content-Type"] == "image/png"
    assert png.headers["Content-Disposition"].startswith("inline")
    assert (await png.read()).startswith(b"\x89PNG")

    nothing = await client.get(names["out.csv"].replace("out.csv", "nope.txt"), headers=auth)
    assert nothing.status == 404 and "nope.txt" in (await nothing.json())["error"]
    other = (await create(client, auth, "another"))["session"]["id"]
    elsewhere = names["out.csv"].replace(f"/sessions/{sid}/", f"/sessions/{other}/")
    assert (await client.get(elsewhere, headers=auth)).status == 404
    bob = await bearer(app, "bob")
    assert (await client.get(names["out.csv"], headers=bob)).status == 404


async def test_an_older_version_a_failure_and_the_tests(
    client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    answers(fake, "def add(a, b):\n    return a + b\nprint(add(2, 3))")
    sid = (await create(client, auth, "add"))["session"]["id"]
    answers(fake, "raise SystemExit(3)")
    await client.post(f"/api/sessions/{sid}/turns", json={"text": "fail"}, headers=auth)
    failed = (await (await client.post(f"/api/sessions/{sid}/runs", headers=auth)).json())["run"]
    assert (failed["version"], failed["outcome"], failed["exit_code"]) == (2, "failed", 3)
    assert [a["kind"] for a in failed["actions"]] == ["fix"]
    older = await client.post(f"/api/sessions/{sid}/runs", json={"version": 1}, headers=auth)
    assert (await older.json())["run"]["stdout"] == "5\n"
    tests = await client.post(
        f"/api/sessions/{sid}/runs", json={"kind": "test", "version": 1}, headers=auth
    )
    assert tests.status == 409  # tests are for the latest version only
    bad = await client.post(
        f"/api/sessions/{sid}/runs", json={"kind": "test", "stdin": "x"}, headers=auth
    )
    assert bad.status == 400
    answers(fake, "def add(a, b):\n    return a + b")
    await client.post(f"/api/sessions/{sid}/revert", json={"version": 1}, headers=auth)
    passed = await client.post(f"/api/sessions/{sid}/runs", json={"kind": "test"}, headers=auth)
    run = (await passed.json())["run"]
    assert (run["kind"], run["outcome"], run["version"]) == ("test", "ok", 3)
    assert "class AddTest" in run["tests"]


async def test_file_limits_are_the_cores(client: Client, auth: dict[str, str]) -> None:
    sid = (await create(client, auth, "files"))["session"]["id"]
    big = await client.put(
        f"/api/sessions/{sid}/files/big.bin",
        data=io.BytesIO(b"0" * (MAX_FILE_BYTES + 1)),
        headers=auth,
    )
    assert big.status == 413
    assert (await big.json())["error"] == (
        "`big.bin` was not attached: over 2.0 MB, the limit for one file."
    )
    huge = await client.put(
        f"/api/sessions/{sid}/files/huge.bin", data=io.BytesIO(b"0" * (4 << 20)), headers=auth
    )
    assert huge.status == 413
    odd = await client.put(f"/api/sessions/{sid}/files/My%20Data.csv", data=b"1", headers=auth)
    assert (await odd.json())["file"]["name"] == "My_Data.csv"


async def test_runs_turned_off_are_503_with_the_reason(tmp_path: Path, fake: FakeEngine) -> None:
    config = Config(db_path=tmp_path / "off.db", model="fake:echo", run_snippets=False)
    app = await build(config, engine_factory=lambda spec: fake)
    try:
        await app.start()
        async with TestClient(TestServer(make_web_app(app), host="127.0.0.1")) as client:
            auth = await bearer(app, "alice")
            sid = (await create(client, auth, "x"))["session"]["id"]
            off = await client.post(f"/api/sessions/{sid}/runs", headers=auth)
            assert off.status == 503
            assert (await off.json()) == {"error": "Running snippets is turned off here."}
    finally:
        await app.aclose()
