"""What ``codethread serve`` needs of a chat adapter."""

from __future__ import annotations

import abc
from typing import ClassVar

from aiohttp import web

__all__ = ["ChatAdapter"]


class ChatAdapter(abc.ABC):
    """A platform connection run inside the server's event loop.

    ``routes`` are mounted on the shared aiohttp app (e.g. Slack's ``POST /slack/events``) before
    it starts listening; ``start`` then connects (Socket Mode, Discord's gateway) and returns
    once connecting has begun; ``aclose`` disconnects.
    """

    name: ClassVar[str]

    def routes(self) -> list[web.RouteDef]:
        return []

    @abc.abstractmethod
    async def start(self) -> None: ...

    async def drain(self) -> None:  # noqa: B027 - optional; nothing in flight by default
        """Wait for the answers already in flight (called on shutdown, with a time limit)."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...
