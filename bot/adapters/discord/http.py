"""``DISCORD_API_URL``: Discord's REST API, interaction callbacks and gateway lookup elsewhere.

Set to a shared rate-limit proxy such as nirn-proxy (``http://nirn-proxy:8080/api/v10``) in
multi-process deployments, or to a fake Discord in tests. discord.py keeps its REST base in
``discord.http.Route.BASE``, a class attribute shared by every client in the process; rather
than change it for everyone, these classes rewrite the URL of each request they send:

- :class:`ApiHTTPClient` for the bot's REST calls. A plain ``discord.Client`` connects to the
  fixed ``wss://gateway.discord.gg``; this client asks ``GET <api>/gateway/bot`` instead, as
  ``AutoShardedClient`` does, so the gateway URL comes from the proxy too.
- :class:`ApiWebhooks` for interaction callbacks and followups, which discord.py sends through
  the webhook adapter in ``discord.webhook.async_.async_context``; it wraps the adapter that
  was there, so the adapter installs it only in the context of its own connection task.

These are discord.py 2.7 internals, which is why discord.py is pinned to a minor version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route
from discord.webhook.async_ import AsyncWebhookAdapter

__all__ = ["ApiHTTPClient", "ApiWebhooks"]


def _rebase(url: str, api_url: str) -> str:
    return api_url + url[len(Route.BASE) :] if url.startswith(Route.BASE) else url


class ApiHTTPClient(HTTPClient):
    """discord.py's REST client with its base URL moved to ``api_url``."""

    def __init__(
        self,
        *,
        api_url: str,
        max_ratelimit_timeout: float | None,
        http_trace: aiohttp.TraceConfig | None = None,
    ) -> None:
        super().__init__(
            asyncio.get_running_loop(),
            max_ratelimit_timeout=max_ratelimit_timeout,
            http_trace=http_trace,
        )
        self.api_url = api_url.rstrip("/")
        self._gateway: str | None = None

    async def request(
        self,
        route: Route,
        *,
        files: Sequence[discord.File] | None = None,
        form: Iterable[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        route.url = _rebase(route.url, self.api_url)
        return await super().request(route, files=files, form=form, **kwargs)

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        target = yarl.URL(url)
        if target.host == DiscordWebSocket.DEFAULT_GATEWAY.host:
            if self._gateway is None:
                _, self._gateway, _ = await self.get_bot_gateway()
            url = str(yarl.URL(self._gateway).with_query(target.query))
        return await super().ws_connect(url, compress=compress)


class ApiWebhooks(AsyncWebhookAdapter):
    """Interaction callbacks and followups at ``api_url``, sent by the adapter it wraps."""

    def __init__(self, api_url: str, inner: AsyncWebhookAdapter) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.api_url = api_url.rstrip("/")
        self.inner = inner

    async def request(self, route: Route, session: aiohttp.ClientSession, **kwargs: Any) -> Any:
        route.url = _rebase(route.url, self.api_url)
        return await self.inner.request(route, session, **kwargs)
