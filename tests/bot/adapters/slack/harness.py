"""The Slack adapter end to end: the harness the tests of this package share.

Requests are signed with slack_sdk's SignatureVerifier and posted to ``/slack/events`` of
``bot.server.make_web_app``; the adapter's Web API client talks to :class:`FakeSlack`, which
records every call. The composition root is the real one, with a scripted FakeEngine (or the
loopback OpenAI-compatible server).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.signature import SignatureVerifier

from bot.adapters.slack import SlackAdapter
from bot.app import App, build
from bot.config import Config
from bot.server import make_web_app
from bot.values import Caller
from engines import FakeEngine, create_engine
from tests.fakes.slack_api import BOT_USER, TEAM, FakeSlack, Posted

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
_ids = itertools.count(1)


@dataclass
class Bot:
    app: App
    adapter: SlackAdapter
    http: TestClient[Any, Any]
    slack: FakeSlack

    async def post(
        self, body: str, content_type: str, *, retry: int | None = None, secret: str = SECRET
    ) -> tuple[int, str, float]:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(body, stamp, secret),
        }
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        began = time.perf_counter()
        response = await self.http.post("/slack/events", data=body, headers=headers)
        text = await response.text()
        return response.status, text, time.perf_counter() - began

    async def command(
        self, name: str, text: str, *, user: str = "U1", channel: str = "C1", team: str = TEAM
    ) -> tuple[int, str, float]:
        form = {
            "token": "legacy",
            "team_id": team,
            "channel_id": channel,
            "user_id": user,
            "command": name,
            "text": text,
            "api_app_id": "A1",
            "response_url": self.slack.response_url(f"{user}-{next(_ids)}"),
            "trigger_id": f"trigger-{next(_ids)}",
        }
        return await self.post(urlencode(form), "application/x-www-form-urlencoded")

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> int:
        body = event_body(event, event_id=event_id or f"Ev{next(_ids)}")
        status, _, _ = await self.post(json.dumps(body), "application/json", retry=retry)
        return status

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        body = urlencode({"payload": json.dumps(payload)})
        status, text, _ = await self.post(body, "application/x-www-form-urlencoded")
        return status, text

    async def click(
        self,
        action_id: str,
        message: Posted,
        *,
        user: str = "U1",
        value: str | None = None,
        settle: bool = True,
    ) -> None:
        """Press a button of ``message`` (or, with ``value``, one it does not show)."""
        if value is None:
            value = next(
                e["value"]
                for b in message.blocks
                if b["type"] == "actions"
                for e in b["elements"]
                if e["action_id"] == action_id
            )
        status, _ = await self.interact(
            {
                "type": "block_actions",
                "team": {"id": TEAM},
                "user": {"id": user},
                "api_app_id": "A1",
                "channel": {"id": message.channel},
                "container": {"type": "message", "message_ts": message.ts},
                "message": {"ts": message.ts, "thread_ts": message.thread_ts},
                "trigger_id": f"trigger-click-{next(_ids)}",
                "response_url": self.slack.response_url(f"click-{next(_ids)}"),
                "actions": [
                    {"action_id": action_id, "block_id": "b", "type": "button", "value": value}
                ],
            }
        )
        assert status == 200
        if settle:
            await self.settle()

    async def submit(
        self, view: dict[str, Any], values: dict[str, str], *, user: str = "U1"
    ) -> dict[str, Any]:
        """Submit an opened modal with ``values`` typed in (by block id); the app's answer as
        Slack reads it ({}: the form closes), checked by the fake."""
        status, text = await self.interact(self.slack.submission(view, values, user=user))
        assert status == 200
        return self.slack.check_view_answer(view, text)

    async def settle(self) -> None:
        await self.adapter.drain()

    async def start_session(
        self, text: str = "say hi", *, user: str = "U1", channel: str = "C1"
    ) -> Posted:
        status, _, _ = await self.command("/code", text, user=user, channel=channel)
        assert status == 200
        await self.settle()
        return self.slack.top_level(channel)[-1]

    def caller(self, user: str = "U1", channel: str = "C1") -> Caller:
        return Caller(platform="slack", workspace=TEAM, user=user, channel=channel)

    def count(self, kind: str) -> float:
        return float(self.app.metrics.events.labels(platform="slack", kind=kind)._value.get())

    def needs_sandbox(self) -> None:
        if not self.app.runs.can_run:
            pytest.skip(f"no sandbox here: {self.app.runs._disabled}")


def sign(body: str, stamp: str, secret: str = SECRET) -> str:
    return SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body) or ""


def event_body(event: dict[str, Any], *, event_id: str, team: str = TEAM) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
    }


def reply(parent: Posted, text: str, *, user: str = "U1", **extra: Any) -> dict[str, Any]:
    ts = f"1800000000.{next(_ids):06d}"
    return {
        "type": "message",
        "channel": parent.channel,
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": parent.ts,
        "channel_type": "channel",
        **extra,
    }


def shared(
    parent: Posted, files: list[dict[str, Any]], text: str = "", *, user: str = "U1"
) -> dict[str, Any]:
    """A person's message in ``parent``'s thread with files (Slack's ``file_share``)."""
    return {**reply(parent, text, user=user), "subtype": "file_share", "files": files}


def direct(
    text: str, *, thread: str | None, user: str = "U1", channel: str = "D1"
) -> dict[str, Any]:
    """A person's message to the app: in the pane's (or a direct message's) thread ``thread``,
    or outside any thread."""
    ts = f"1800000000.{next(_ids):06d}"
    event = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "channel_type": "im",
    }
    return {**event, "thread_ts": thread} if thread else event


def fences_balanced(markdown: str) -> bool:
    return sum(1 for line in markdown.splitlines() if line.startswith("```")) % 2 == 0


def config(tmp_path: Path, slack: FakeSlack, **slack_settings: Any) -> Config:
    settings = {"slack_signing_secret": SECRET, **slack_settings}
    return Config(
        db_path=tmp_path / "ct.db",
        model="fake:echo",
        rate_limit_per_minute=0,
        edit_interval=0.05,
        slack_bot_token=TOKEN,
        slack_api_url=slack.base_url,
        **settings,
    )


@contextlib.asynccontextmanager
async def running(
    config: Config, slack: FakeSlack, engine: FakeEngine | None
) -> AsyncIterator[Bot]:
    """The real app and web app with a started Slack adapter (edits paced at 0.05 s)."""
    factory = (lambda spec: engine) if engine is not None else create_engine
    app = await build(config, engine_factory=factory)
    await app.start()
    [adapter] = app.adapters
    assert isinstance(adapter, SlackAdapter)
    await adapter.start()
    try:
        server = TestServer(make_web_app(app), host="127.0.0.1")
        async with TestClient(server) as http:
            yield Bot(app=app, adapter=adapter, http=http, slack=slack)
    finally:
        await adapter.aclose()
        await app.aclose()
