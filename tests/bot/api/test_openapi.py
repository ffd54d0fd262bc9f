"""The hand-written OpenAPI description covers every route the app registers under /api/."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import App
from bot.server import make_web_app


async def test_openapi_covers_every_api_route(app: App, client: TestClient[Any, Any]) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    registered = {
        (route.resource.canonical, route.method.lower())
        for route in make_web_app(app).router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api/")
    }
    assert len(registered) >= 14
    described = {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }
    assert registered == described
    for path, item in spec["paths"].items():  # every {param} of a path is declared
        names = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for op in item.values():
            if isinstance(op, dict):
                names |= {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert names == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
