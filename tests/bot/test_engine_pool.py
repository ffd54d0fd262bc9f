"""The engine pool: one engine per catalog entry, even when two entries share a model id."""

from __future__ import annotations

import pytest

from bot.engine_pool import EnginePool
from engines import Catalog, ChatMessage, GenerationRequest, ModelSpec
from tests.fakes.openai_server import OpenAIServer

REQUEST = GenerationRequest(messages=(ChatMessage(role="user", content="hi"),))


async def test_two_entries_with_one_model_id_never_share_an_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    monkeypatch.setenv("TEAM_B_KEY", "sk-team-b")
    async with OpenAIServer(["from a"]) as server_a, OpenAIServer(["from b"]) as server_b:
        team_a = ModelSpec(
            name="team-a", ref="openai:test-model", base_url=server_a.base_url,
            api_key_env="TEAM_A_KEY",
        )  # fmt: skip
        team_b = ModelSpec(
            name="team-b", ref="openai:test-model", base_url=server_b.base_url,
            api_key_env="TEAM_B_KEY", temperature=False,
        )  # fmt: skip
        pool = EnginePool(catalog=Catalog([team_a, team_b]), default_model="team-a")
        try:
            await pool.start()
            b = pool.resolve("team-b")
            assert pool.get(b) is not pool.get(pool.resolve("team-a"))
            assert (await pool.wait_ready(b)).state == "ready"
            assert [d async for d in pool.get(b).stream(REQUEST)] == ["from b"]
            assert [d async for d in pool.get(team_a).stream(REQUEST)] == ["from a"]
            assert pool.get(team_a) is pool.get(pool.resolve("team-a"))  # one per entry
            statuses = {status.spec.name: status for status in pool.status()}
            assert statuses["team-a"].default and not statuses["team-b"].default
            assert str(statuses["team-b"].readiness) == "ready"
        finally:
            await pool.aclose()

        # each request went to its own server, with its own key and its own parameters
        [to_a] = server_a.requests
        [to_b] = server_b.requests
        assert (to_a.authorization, to_b.authorization) == ("Bearer sk-team-a", "Bearer sk-team-b")
        assert "temperature" in to_a.body and "temperature" not in to_b.body
