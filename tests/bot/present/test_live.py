"""The live message: streaming edits at the surface's pace, the result at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.present.live import LiveMessage
from bot.present.testing import RecordingSurface
from bot.present.views import Notice, Writing


def writing(text: str) -> Writing:
    return Writing(text=text, summary="writing")


async def test_the_result_does_not_wait_out_the_edit_interval() -> None:
    surface = RecordingSurface(edit_interval=1.0)
    live: LiveMessage[int] = LiveMessage(surface)
    await live.show(writing("a"))  # posted at once
    await live.show(writing("b"))  # an edit due in a second
    began = time.monotonic()
    await live.finish(Notice(text="done", summary="done"))
    assert time.monotonic() - began < 0.1
    # the streaming edit that waited for its turn gave way to the result
    assert [(c.verb, c.view.text if c.view else None) for c in surface.calls] == [
        ("post", "a"),
        ("edit", "done"),
    ]


@dataclass(eq=False)
class Paced(RecordingSurface):
    edit_minimum: float = 0.2  # a platform's hard minimum between two edits


async def test_the_result_keeps_the_platforms_hard_minimum() -> None:
    surface = Paced(edit_interval=0.05)
    live: LiveMessage[int] = LiveMessage(surface)
    await live.show(writing("a"))
    await live.show(writing("b"))
    await asyncio.sleep(0.1)  # the edit went out (after the 0.05 s interval)
    began = time.monotonic()
    await live.finish(Notice(text="done", summary="done"))
    assert 0.1 <= time.monotonic() - began < 0.3  # the rest of the 0.2 s after that edit
    assert [c.verb for c in surface.calls] == ["post", "edit", "edit"]
