"""How Discord's refusals, buttons and markdown map onto the presenter's values; delivery."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest
from discord import ui

from bot.adapters.discord.buttons import ActionButton, button_rows
from bot.adapters.discord.render import MAX_FILES, MAX_UPLOAD_BYTES, markdown, message
from bot.adapters.discord.surface import RETRY_WINDOW, ThreadSurface, refusals
from bot.present import Attachment, PlatformRefused, RunCard, Status, VersionCard, words
from bot.values import Action
from tests.fakes.discord_fakes import http_error

from .conftest import fences_balanced


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
    [row] = button_rows(actions)
    assert button_rows(()) == []
    items = [item for item in row.children if isinstance(item, ActionButton)]
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


# -- markdown as Discord reads it ------------------------------------------------------------

ZWSP = "\u200b"


def fence_lines(text: str) -> list[str]:
    """The lines that hold a run of three backticks: in safe markdown, only fences."""
    return [line for line in text.splitlines() if "```" in line]


def test_a_longer_fence_becomes_three_backticks_with_the_runs_inside_broken() -> None:
    text = "**v1**\n````python\nprint('```')\n# not a heading\n````\nA note."
    safe = markdown(text)
    assert safe == f"**v1**\n```python\nprint('``{ZWSP}`')\n# not a heading\n```\nA note."
    assert fence_lines(safe) == ["```python", "```"]


def test_runs_of_any_length_are_broken_inside_and_outside_blocks() -> None:
    safe = markdown("``````\n`````\n``````\nprose ``` here")
    assert safe == f"```\n``{ZWSP}``{ZWSP}`\n```\nprose ``{ZWSP}` here"


def test_tildes_unclosed_blocks_and_odd_info_strings() -> None:
    assert markdown("~~~js\nx\n~~~") == "```js\nx\n```"
    assert markdown("```py\nopen") == "```py\nopen\n```"  # closed, as a partial answer is
    assert markdown("```{weird}\nx\n```") == "```\nx\n```"  # no language Discord would misread


def test_masked_links_are_escaped_outside_code_blocks_only_when_asked() -> None:
    text = "See [docs](https://evil.example)\n```md\n[kept](https://x)\n```"
    assert markdown(text) == text
    escaped = markdown(text, links=False)
    assert escaped.startswith("See \\[docs](https://evil.example)\n")
    assert "\n[kept](https://x)\n" in escaped
    assert markdown("already \\[safe](u)", links=False) == "already \\[safe](u)"


def test_text_made_longer_by_breaking_runs_is_cut_to_fit() -> None:
    view = VersionCard(text="```\n" + "`" * 3990 + "\n```", summary="v")
    [container] = message(view, editing=False)["view"].children
    [text] = [c for c in container.children if isinstance(c, ui.TextDisplay)]
    assert len(text.content) <= 4000 and fences_balanced(text.content)


# -- files ----------------------------------------------------------------------------------


def _made(name: str, data: bytes = b"x") -> Attachment:
    return Attachment(filename=name, data=data, title=f"{name} · made by version 1 of #1")


def test_a_cards_files_all_go_with_it_pictures_in_one_gallery() -> None:
    snippet = Attachment(filename="snippet.py", content="print(1)", title="v1")
    view = RunCard(
        text="run",
        summary="run",
        file=snippet,
        outputs=(_made("a.png"), _made("table.csv"), _made("my plot.JPG"), _made("snippet.py")),
    )
    for editing, key in ((False, "files"), (True, "attachments")):
        sent = message(view, editing=editing)
        names = [f.filename for f in sent[key]]
        assert names == ["snippet.py", "a.png", "table.csv", "my_plot.JPG", "snippet-2.py"]
        [container] = sent["view"].children
        kinds = [type(c).__name__ for c in container.children]
        assert kinds == ["TextDisplay", "File", "MediaGallery", "File", "File"]
        [gallery] = [c for c in container.children if isinstance(c, ui.MediaGallery)]
        urls = [item.media.url for item in gallery.items]
        assert urls == ["attachment://a.png", "attachment://my_plot.JPG"]
        files = [c.media.url for c in container.children if isinstance(c, ui.File)]
        assert files == [
            "attachment://snippet.py",
            "attachment://table.csv",
            "attachment://snippet-2.py",
        ]


def test_files_past_discords_limits_are_left_out_not_the_message() -> None:
    many = RunCard(text="r", summary="r", outputs=tuple(_made(f"f{i}.txt") for i in range(12)))
    assert len(message(many, editing=False)["files"]) == MAX_FILES
    half = MAX_UPLOAD_BYTES // 2
    big = RunCard(text="r", summary="r", outputs=(_made("a.bin", b"a" * half),) * 3)
    assert [f.filename for f in message(big, editing=False)["files"]] == ["a.bin", "a-2.bin"]


# -- results are delivered despite a long rate limit -----------------------------------------


class _Channel:
    """A channel whose first sends are rate-limited for ``waits`` seconds each."""

    def __init__(self, *waits: float) -> None:
        self.waits = list(waits)
        self.sent: list[dict[str, Any]] = []

    async def send(self, **fields: Any) -> Any:
        if self.waits:
            raise discord.RateLimited(self.waits.pop(0))
        self.sent.append(fields)
        return SimpleNamespace(id=len(self.sent))


def _surface(channel: _Channel) -> ThreadSurface:
    return ThreadSurface(cast(discord.Client, None), 1.0, cast(discord.abc.Messageable, channel))


async def test_a_rate_limited_result_is_sent_again_once_the_limit_has_passed() -> None:
    channel = _Channel(0.05, 0.05)
    started = asyncio.get_running_loop().time()
    await _surface(channel).post(VersionCard(text="v1", summary="v1"))
    assert len(channel.sent) == 1 and asyncio.get_running_loop().time() - started >= 0.1


async def test_a_wait_beyond_the_window_or_for_a_status_is_not_taken() -> None:
    surface = _surface(_Channel(RETRY_WINDOW + 1))
    with pytest.raises(PlatformRefused) as refused:
        await surface.post(RunCard(text="run", summary="run"))
    assert refused.value.reason == "rate_limited" and refused.value.retry_after == RETRY_WINDOW + 1
    with pytest.raises(PlatformRefused):  # a status is soon out of date: not worth a wait
        await _surface(_Channel(0.05)).post(Status(text="waiting", summary="waiting"))
