"""``GET /api/openapi.json``: the API described as OpenAPI 3.1, written by hand.

Hand-written rather than generated, so that it says what a client needs (which errors, what a
stream sends) in words; a test checks that every route the app registers under ``/api/`` is
in it, with its methods, so it cannot silently fall behind.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["SPEC", "routes"]

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Json:
    return _json(_ref("Error"), description)


def _object(required: list[str], **props: Json) -> Json:
    return {"type": "object", "required": required, "properties": props}


_STR: Json = {"type": "string"}
_INT: Json = {"type": "integer"}
_NINT: Json = {"type": ["integer", "null"]}
_ID = {"name": "id", "in": "path", "required": True, "schema": _INT}
_COMMON = {
    "401": _error("No token, or an unknown, expired or revoked one (WWW-Authenticate: Bearer)"),
    "429": _error("Over the rate limit (Retry-After says when to try again)"),
}
_SESSION_ERRORS = {**_COMMON, "404": _error("No such session, or another user's")}
_BAD = {"400": _error("A body that is not JSON, a missing or wrong field, a refused input")}
_STREAM = {
    "text/event-stream": {
        "schema": _STR,
        "description": (
            "With `Accept: text/event-stream`: one event per view the turn shows "
            "(`status`, `stream`, `delta`, `version`, `noncode`, `failure`, `remove`), each "
            "`data` a JSON object (`message`, `op`, `text`, `summary`, `actions`; `delta` "
            "events carry `delta`); the last event is `done` (the object a plain call "
            'returns) or `error` (`{"error": …}`). The status is then always 200.'
        ),
    }
}


def _turn(summary: str, body: Json, status: str) -> Json:
    ok = _json(_ref("Answer"), "The new version (or an answer without code: `version` null)")
    ok["content"].update(_STREAM)
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            status: ok,
            **_BAD,
            **_SESSION_ERRORS,
            "409": _error("Nothing to do (e.g. that version is already the latest)"),
            "502": _error("The model failed; the request is kept (`failure`) for a retry"),
        },
    }


_SCHEMAS: Json = {
    "Error": _object(["error"], error={**_STR, "description": "One line, for people"}),
    "Session": _object(
        ["id", "title", "language", "model", "versions"],
        id=_INT,
        title=_STR,
        language=_STR,
        model=_STR,
        owner=_STR,
        versions=_INT,
        created_at={**_STR, "format": "date-time"},
        updated_at={**_STR, "format": "date-time"},
        url=_STR,
    ),
    "Version": _object(
        ["number", "code", "note"],
        number=_INT,
        code=_STR,
        note=_STR,
        request=_STR,
        model=_STR,
        latency_ms=_INT,
        prompt_tokens=_NINT,
        completion_tokens=_NINT,
        created_at={**_STR, "format": "date-time"},
    ),
    "Answer": _object(
        ["session", "version"],
        session=_ref("Session"),
        version={"oneOf": [_ref("Version"), {"type": "null"}]},
        answer={**_STR, "description": "The model's answer when it wrote no code"},
    ),
    "Artifact": _object(["name", "url"], name=_STR, url=_STR),
    "Run": _object(
        ["exit_code", "stdout", "stderr", "outcome"],
        id=_NINT,
        version=_NINT,
        kind={"enum": ["run", "test"]},
        outcome={"enum": ["ok", "failed", "compile_error", "limit", "unavailable"]},
        exit_code=_NINT,
        stdout=_STR,
        stderr=_STR,
        compile_output=_STR,
        duration_ms=_INT,
        peak_memory_kb=_NINT,
        limit_hit={"type": ["string", "null"]},
        stdin=_STR,
        args={"type": "array", "items": _STR},
        tests=_STR,
        artifacts={"type": "array", "items": _ref("Artifact")},
    ),
    "File": _object(["name", "size"], name=_STR, size=_INT, created_at=_STR),
}

_SESSION = "/api/sessions/{id}"
_ARTIFACT = f"{_SESSION}/runs/{{run_id}}/artifacts/{{name}}"

SPEC: Json = {
    "openapi": "3.1.0",
    "info": {
        "title": "codethread",
        "version": "1",
        "description": (
            "Sessions of a code-writing bot: each turn makes the next version of a snippet. "
            "Authenticate with `Authorization: Bearer <token>` (`codethread tokens create "
            '--user NAME`). Every error is `{"error": "<one line>"}`.'
        ),
    },
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": _SCHEMAS,
    },
    "paths": {
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/api/sessions": {
            "post": _turn(
                "Start a session; its first version is written from the prompt",
                _object(["prompt"], prompt=_STR, language=_STR, model=_STR),
                "201",
            ),
            "get": {
                "summary": "Your sessions, most recently changed first",
                "parameters": [
                    {"name": "search", "in": "query", "schema": _STR},
                    {"name": "limit", "in": "query", "schema": {**_INT, "maximum": 100}},
                ],
                "responses": {
                    "200": _json(
                        _object(["sessions"], sessions={"type": "array", "items": _ref("Session")}),
                        "Sessions with at least one version",
                    ),
                    **_COMMON,
                },
            },
        },
        _SESSION: {
            "parameters": [_ID],
            "get": {
                "summary": "A session, its latest version and its history",
                "responses": {"200": _json(_ref("Answer"), "The session"), **_SESSION_ERRORS},
            },
            "delete": {
                "summary": "Delete a session and everything in it",
                "responses": {"204": {"description": "Deleted"}, **_SESSION_ERRORS},
            },
        },
        f"{_SESSION}/turns": {
            "parameters": [_ID],
            "post": _turn(
                "Change the snippet: the next version", _object(["text"], text=_STR), "200"
            ),
        },
        f"{_SESSION}/versions/{{number}}": {
            "parameters": [_ID, {"name": "number", "in": "path", "required": True, "schema": _INT}],
            "get": {
                "summary": "One version",
                "responses": {"200": _json(_ref("Answer"), "The version"), **_SESSION_ERRORS},
            },
        },
        f"{_SESSION}/diff": {
            "parameters": [_ID],
            "get": {
                "summary": "What changed between two versions (by default the last two)",
                "parameters": [
                    {"name": "from", "in": "query", "schema": _INT},
                    {"name": "to", "in": "query", "schema": _INT},
                ],
                "responses": {
                    "200": _json(
                        _object(["diff"], diff=_STR, **{"from": _INT, "to": _INT}),
                        'A unified diff ("" when the code is the same)',
                    ),
                    **_BAD,
                    **_SESSION_ERRORS,
                    "409": _error("Only one version: nothing to compare"),
                },
            },
        },
        f"{_SESSION}/revert": {
            "parameters": [_ID],
            "post": _turn(
                "A new version with an earlier version's code",
                _object(["version"], version=_INT),
                "200",
            ),
        },
        f"{_SESSION}/runs": {
            "parameters": [_ID],
            "post": {
                "summary": "Run a version (default the latest) in the sandbox, or test it",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": _object(
                                [],
                                version=_INT,
                                stdin=_STR,
                                args={"type": "array", "items": _STR},
                                kind={"enum": ["run", "test"]},
                            )
                        }
                    }
                },
                "responses": {
                    "200": _json(_object(["run"], run=_ref("Run")), "The stored run"),
                    **_BAD,
                    **_SESSION_ERRORS,
                    "409": _error("No version yet, or a test already under way"),
                    "503": _error("Running snippets is off here (says why)"),
                },
            },
            "get": {
                "summary": "The session's runs, newest first, with their files",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {**_INT, "maximum": 200}}
                ],
                "responses": {
                    "200": _json(
                        _object(["runs"], runs={"type": "array", "items": _ref("Run")}), "Runs"
                    ),
                    **_SESSION_ERRORS,
                },
            },
        },
        _ARTIFACT: {
            "parameters": [
                _ID,
                {"name": "run_id", "in": "path", "required": True, "schema": _INT},
                {"name": "name", "in": "path", "required": True, "schema": _STR},
            ],
            "get": {
                "summary": "A file a run made (a download; pictures inline)",
                "responses": {
                    "200": {"description": "The file's bytes, with its content type"},
                    **_SESSION_ERRORS,
                },
            },
        },
        f"{_SESSION}/files": {
            "parameters": [_ID],
            "get": {
                "summary": "The session's input files",
                "responses": {
                    "200": _json(
                        _object(["files"], files={"type": "array", "items": _ref("File")}), "Files"
                    ),
                    **_SESSION_ERRORS,
                },
            },
        },
        f"{_SESSION}/files/{{name}}": {
            "parameters": [_ID, {"name": "name", "in": "path", "required": True, "schema": _STR}],
            "put": {
                "summary": "Attach (or replace) an input file; the raw body is its bytes",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {"schema": {**_STR, "format": "binary"}}
                    },
                },
                "responses": {
                    "200": _json(
                        _object(["file"], file=_ref("File"), session=_ref("Session")),
                        "Stored (under the name the answer gives)",
                    ),
                    **_SESSION_ERRORS,
                    "409": _error("The session holds the most files it may"),
                    "413": _error("Over the limit for one file or for the session's files"),
                },
            },
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", openapi, allow_head=False)]
