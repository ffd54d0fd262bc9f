"""Sessions through the HTTP API: create (JSON and SSE), adjust, list, show, diff, revert,
delete, on SQLite and a real PostgreSQL; refusals in the core's words with their statuses."""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import App
from bot.errors import EmptyPrompt, PromptTooLong, SessionNotFound
from engines import EngineError, FakeEngine, GenerationRequest

from ..conftest import both_backends, fenced
from .conftest import SSE, bearer, create, events

db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)

Client = TestClient[Any, Any]


def numbered(fake: FakeEngine) -> None:
    """Each answer's code names the request it answers (``# <request>``)."""

    def respond(request: GenerationRequest) -> str:
        asked = request.messages[-1].content.strip().splitlines()[-1]
        return fenced(f"# {asked}\nprint({len(request.messages)})", note="Here it is.")

    fake.responder = respond


async def test_create_adjust_show_diff_revert_and_delete(
    client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    numbered(fake)
    made = await create(client, auth, "print a number")
    session, version = made["session"], made["version"]
    assert version["number"] == 1 and version["code"].startswith("# print a number")
    assert version["note"] == "Here it is." and session["language"] == "python"
    sid = session["id"]

    adjusted = await client.post(f"/api/sessions/{sid}/turns", json={"text": "two"}, headers=auth)
    assert adjusted.status == 200
    body = await adjusted.json()
    assert body["version"]["number"] == 2 and body["version"]["code"].startswith("# two")
    assert body["session"]["versions"] == 2

    shown = await (await client.get(f"/api/sessions/{sid}", headers=auth)).json()
    assert shown["version"]["number"] == 2
    assert [v["request"] for v in shown["versions"]] == ["print a number", "two"]
    first = await client.get(f"/api/sessions/{sid}/versions/1", headers=auth)
    assert (await first.json())["version"]["code"] == version["code"]
    missing = await client.get(f"/api/sessions/{sid}/versions/9", headers=auth)
    assert missing.status == 404
    assert (await missing.json())["error"] == f"Session {sid} has no version 9."

    diff = await (await client.get(f"/api/sessions/{sid}/diff?from=1&to=2", headers=auth)).json()
    assert diff["from"] == 1 and diff["to"] == 2
    assert "-# print a number" in diff["diff"] and "+# two" in diff["diff"]
    bad = await client.get(f"/api/sessions/{sid}/diff?from=x", headers=auth)
    assert bad.status == 400 and "'from'" in (await bad.json())["error"]

    reverted = await client.post(f"/api/sessions/{sid}/revert", json={"version": 1}, headers=auth)
    assert reverted.status == 200
    again = (await reverted.json())["version"]
    assert again["number"] == 3 and again["code"] == version["code"]
    latest = await client.post(f"/api/sessions/{sid}/revert", json={"version": 3}, headers=auth)
    assert latest.status == 409
    assert (await latest.json())["error"] == f"Version 3 is already the latest of #{sid}."

    listed = await (await client.get("/api/sessions", headers=auth)).json()
    assert [s["id"] for s in listed["sessions"]] == [sid]
    found = await (await client.get("/api/sessions?search=number", headers=auth)).json()
    assert [s["id"] for s in found["sessions"]] == [sid]
    none = await (await client.get("/api/sessions?search=zebra", headers=auth)).json()
    assert none["sessions"] == []

    deleted = await client.delete(f"/api/sessions/{sid}", headers=auth)
    assert deleted.status == 204
    gone = await client.get(f"/api/sessions/{sid}", headers=auth)
    assert gone.status == 404
    assert (await gone.json()) == {"error": str(SessionNotFound(sid))}


async def test_create_streams_the_turn_as_server_sent_events(
    client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("print('streamed')\n" * 8, note="Streamed.")
    fake.chunk_size = 8
    response = await client.post(
        "/api/sessions", json={"prompt": "stream it"}, headers={**auth, **SSE}
    )
    assert response.status == 200
    seen = await events(response)
    kinds = [kind for kind, _ in seen]
    assert kinds[-1] == "done" and "delta" in kinds and "version" in kinds
    deltas = "".join(data["delta"] for kind, data in seen if kind == "delta")
    assert "print('streamed')" in deltas and deltas.count("print") == 8
    card = next(data for kind, data in seen if kind == "version")
    assert card["code"] == "print('streamed')\n" * 7 + "print('streamed')"
    assert {a["kind"] for a in card["actions"]} >= {"download", "delete"}
    assert card["text"].startswith("**Version 1 of #") and card["summary"]
    done = seen[-1][1]
    assert done["version"]["number"] == 1 and done["version"]["note"] == "Streamed."
    shown = await client.get(f"/api/sessions/{done['session']['id']}", headers=auth)
    assert (await shown.json())["version"] == done["version"]

    turn = await client.post(
        f"/api/sessions/{done['session']['id']}/turns", json={"text": "again"},
        headers={**auth, **SSE},
    )  # fmt: skip
    last = (await events(turn))[-1]
    assert last[0] == "done" and last[1]["version"]["number"] == 2


async def test_a_refusal_in_a_stream_is_its_last_event(
    client: Client, auth: dict[str, str]
) -> None:
    made = await create(client, auth, "one")
    sid = made["session"]["id"]
    response = await client.post(
        f"/api/sessions/{sid}/revert", json={"version": 1}, headers={**auth, **SSE}
    )
    seen = await events(response)
    assert seen[-1] == ("error", {"error": f"Version 1 is already the latest of #{sid}."})


async def test_another_users_session_is_not_found(
    app: App, client: Client, auth: dict[str, str]
) -> None:
    made = await create(client, auth, "mine")
    sid = made["session"]["id"]
    bob = await bearer(app, "bob")
    missing = {"error": str(SessionNotFound(sid))}
    for method, path, body in [
        ("GET", f"/api/sessions/{sid}", None),
        ("GET", f"/api/sessions/{sid}/versions/1", None),
        ("GET", f"/api/sessions/{sid}/diff", None),
        ("POST", f"/api/sessions/{sid}/turns", {"text": "take it"}),
        ("POST", f"/api/sessions/{sid}/revert", {"version": 1}),
        ("POST", f"/api/sessions/{sid}/runs", {}),
        ("GET", f"/api/sessions/{sid}/runs", None),
        ("GET", f"/api/sessions/{sid}/files", None),
        ("DELETE", f"/api/sessions/{sid}", None),
    ]:
        response = await client.request(method, path, json=body, headers=bob)
        assert response.status == 404, (method, path)
        assert await response.json() == missing, (method, path)
    nowhere = await client.get("/api/sessions/999999", headers=bob)
    assert await nowhere.json() == {"error": str(SessionNotFound(999999))}
    assert (await (await client.get("/api/sessions", headers=bob)).json())["sessions"] == []
    assert (await client.get(f"/api/sessions/{sid}", headers=auth)).status == 200


async def test_empty_and_oversized_prompts_are_refused_in_the_cores_words(
    app: App, client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    empty = await client.post("/api/sessions", json={"prompt": "   "}, headers=auth)
    assert empty.status == 400 and await empty.json() == {"error": str(EmptyPrompt())}
    limit = app.service.max_prompt_chars
    long = await client.post("/api/sessions", json={"prompt": "x" * (limit + 1)}, headers=auth)
    assert long.status == 400
    assert await long.json() == {"error": str(PromptTooLong(limit + 1, limit))}
    made = await create(client, auth, "fine")
    sid = made["session"]["id"]
    turn = await client.post(f"/api/sessions/{sid}/turns", json={"text": ""}, headers=auth)
    assert turn.status == 400 and await turn.json() == {"error": str(EmptyPrompt())}
    streamed = await client.post(
        f"/api/sessions/{sid}/turns", json={"text": ""}, headers={**auth, **SSE}
    )
    assert streamed.status == 400  # refused before any event: a plain JSON error
    language = await client.post(
        "/api/sessions", json={"prompt": "hi", "language": "cobol"}, headers=auth
    )
    assert language.status == 400 and "Unknown language 'cobol'" in (await language.json())["error"]
    assert len(fake.requests) == 1  # only "fine" reached the model


async def test_bad_bodies_are_400_with_one_line(client: Client, auth: dict[str, str]) -> None:
    cases: list[tuple[Any, str]] = [
        (b"{not json", "The body must be a JSON object (Content-Type: application/json)."),
        (b"[1, 2]", "The body must be a JSON object (Content-Type: application/json)."),
        (b"{}", "The body needs the field 'prompt'."),
        (b'{"prompt": 3}', "The field 'prompt' must be a string."),
        (b'{"prompt": "x", "colour": 1}', "Unknown field(s) 'colour'; this call takes"),
    ]
    for data, message in cases:
        response = await client.post(
            "/api/sessions", data=data, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status == 400, data
        body = await response.json()
        assert body["error"].startswith(message) and "\n" not in body["error"]
    made = await create(client, auth, "ok")
    sid = made["session"]["id"]
    revert = await client.post(f"/api/sessions/{sid}/revert", json={"version": True}, headers=auth)
    assert revert.status == 400
    assert (await revert.json())["error"] == "The field 'version' must be a whole number from 1."


async def test_unknown_routes_and_methods_answer_json(client: Client, auth: dict[str, str]) -> None:
    nothing = await client.get("/api/nothing", headers=auth)
    assert nothing.status == 404 and "GET /api/openapi.json" in (await nothing.json())["error"]
    wrong = await client.patch("/api/sessions", headers=auth)
    assert wrong.status == 405 and "PATCH" in (await wrong.json())["error"]
    huge = await client.post(
        "/api/sessions",
        data=io.BytesIO(b"x" * (1024 * 1024 + 1)),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert huge.status == 413 and "error" in await huge.json()


async def test_an_answer_without_code_and_a_failed_model(
    client: Client, auth: dict[str, str], fake: FakeEngine
) -> None:
    fake.responder = lambda r: "Which CSV do you mean?"
    asked = await client.post("/api/sessions", json={"prompt": "parse it"}, headers=auth)
    assert asked.status == 201
    body = await asked.json()
    assert body["version"] is None and body["answer"] == "Which CSV do you mean?"
    sid = body["session"]["id"]
    fake.fail = EngineError("The model server is down.")
    failed = await client.post(f"/api/sessions/{sid}/turns", json={"text": "a.csv"}, headers=auth)
    assert failed.status == 502
    kept = await failed.json()
    assert kept["error"] == "The model server is down." and kept["failure"] is not None
    assert kept["session"]["id"] == sid
    streamed = await client.post(
        f"/api/sessions/{sid}/turns", json={"text": "b.csv"}, headers={**auth, **SSE}
    )
    kind, last = (await events(streamed))[-1]
    assert kind == "error" and last["error"] == "The model server is down."
    fake.fail = None
    fake.responder = lambda r: fenced("print('at last')")
    done = await client.post(f"/api/sessions/{sid}/turns", json={"text": "c.csv"}, headers=auth)
    assert done.status == 200 and (await done.json())["version"]["number"] == 1
