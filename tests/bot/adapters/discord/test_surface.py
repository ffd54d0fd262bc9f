"""How Discord's refusals and buttons map onto the presenter's values."""

from __future__ import annotations

import re

import discord
import pytest

from bot.adapters.discord.buttons import ActionButton, buttons_for
from bot.adapters.discord.surface import refusals
from bot.present import PlatformRefused, words
from bot.values import Action
from tests.fakes.discord_fakes import http_error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (http_error(403, "Missing Permissions", 50013), "missing_permission"),
        (http_error(404, "Unknown Message", 10008), "gone"),
        (http_error(500, "Internal Server Error"), "error"),
        (discord.RateLimited(40.0), "rate_limited"),
    ],
)
def test_discord_errors_become_platform_refusals(error: Exception, reason: str) -> None:
    with pytest.raises(PlatformRefused) as raised, refusals():
        raise error
    assert raised.value.reason == reason
    assert words.explain(raised.value)  # worded by the presenter, not here


async def test_buttons_carry_the_action_and_read_as_words_say() -> None:
    actions = (
        Action(kind="run", session_id=12, number=3),
        Action(kind="retry", session_id=12, failure=7),
        Action(kind="delete", session_id=12),
    )
    view = buttons_for(actions)
    assert view is not None and buttons_for(()) is None
    items = [item for item in view.children if isinstance(item, ActionButton)]
    assert [i.item.custom_id for i in items] == ["ct:run:12:3", "ct:retry:12:7", "ct:delete:12"]
    assert [i.item.label for i in items] == [words.look(a).label for a in actions]
    assert items[2].item.style is discord.ButtonStyle.danger


@pytest.mark.parametrize(
    ("custom_id", "action"),
    [
        ("ct:fix:12:3", Action(kind="fix", session_id=12, number=3)),
        ("ct:retry:12:7", Action(kind="retry", session_id=12, failure=7)),
        ("ct:fix:12", Action(kind="fix", session_id=12)),  # buttons of earlier releases
        ("ct:retry:12", Action(kind="retry", session_id=12)),
    ],
)
async def test_custom_ids_decode_also_from_earlier_releases(custom_id: str, action: Action) -> None:
    match = re.fullmatch(ActionButton.__discord_ui_compiled_template__, custom_id)
    assert match is not None
    button = await ActionButton.from_custom_id(None, None, match)  # type: ignore[arg-type]
    assert button.action == action
    assert re.fullmatch(ActionButton.__discord_ui_compiled_template__, "ct:nope:12:3") is None
