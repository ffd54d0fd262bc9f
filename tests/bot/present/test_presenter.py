"""The presenter once, over a recording surface: what every platform's surface is asked to show."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from bot.app import App, build
from bot.config import Config
from bot.errors import NotASession
from bot.present.testing import RecordingSurface
from bot.present.views import FailureCard, Notice, Status, VersionCard, Writing
from bot.values import Action, Caller
from engines import Engine, EngineUnavailable, FakeEngine, ModelSpec
from storage import SessionKey

from ..conftest import fenced

SLACKER = Caller(platform="slack", workspace="T1", user="U1", channel="C1")
_threads = itertools.count()


def thread() -> SessionKey:
    return SessionKey(platform="slack", workspace="T1", channel="C1", thread=f"{next(_threads)}.1")


async def opened(app: App, surface: RecordingSurface, prompt: str = "say hi") -> SessionKey:
    key = thread()
    checked = app.service.check(SLACKER, prompt=prompt)
    await app.presenter.turn(surface, lambda: app.service.open(SLACKER, key, checked))
    return key


async def test_a_turn_is_one_message_ending_as_the_version_with_its_actions(
    app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("\n".join(f"x{i} = {i}" for i in range(30)), note="Done.")
    fake.chunk_size = 5
    surface = RecordingSurface()
    await opened(app, surface)

    [handle] = surface.messages()
    [post] = [c for c in surface.calls if c.verb == "post"]
    assert isinstance(post.view, Writing) and "Writing version 1" in post.view.text
    final = surface.messages()[handle]
    assert isinstance(final, VersionCard) and "x29 = 29" in final.text and "Done." in final.text
    kinds = [a.kind for a in final.actions]
    assert kinds[-1] == "delete" and (("run" in kinds) == app.runs.can_run)
    assert surface.told() == []


async def test_a_refusal_is_told_privately_and_posts_nothing(app: App) -> None:
    surface = RecordingSurface()
    key = await opened(app, surface)
    session = await app.service.find(key)
    assert session is not None
    await app.presenter.turn(
        surface, lambda: app.service.turn(session, SLACKER, "x" * 100_000), request="keep me"
    )
    [told] = surface.told()
    assert isinstance(told, Notice) and told.problem and "the limit is 8,000" in told.text
    assert "keep me" in told.text  # what was typed is not lost
    assert len(surface.messages()) == 1


async def test_a_reply_in_a_thread_that_is_no_session_is_quiet_or_a_hint(app: App) -> None:
    surface = RecordingSurface()
    key = thread()
    await app.presenter.turn(
        surface, lambda: app.service.reply(SLACKER, key, "hello"), quiet=(NotASession,)
    )
    assert surface.calls == []
    await app.presenter.turn(surface, lambda: app.service.reply(SLACKER, key, "@bot hello"))
    [told] = surface.told()
    assert "no snippet session here" in told.text


async def test_replies_keep_arrival_order_and_see_their_place_in_line(
    app: App, fake: FakeEngine
) -> None:
    fake.delay = 0.02
    fake.responder = lambda r: fenced(f"# {r.messages[-1].content}")
    surface = RecordingSurface()
    key = await opened(app, surface)
    shows = [
        app.presenter.turn(surface, lambda text=text: app.service.reply(SLACKER, key, text))
        for text in ("one", "two", "three")
    ]  # places taken here, in this order, before any coroutine runs
    await asyncio.gather(*reversed(shows))
    session = await app.service.find(key)
    assert session is not None
    versions = await app.store.list_versions(session.id)
    assert [v.request for v in versions] == ["say hi", "one", "two", "three"]
    waiting = [c.view for c in surface.calls if isinstance(c.view, Status)]
    assert any("Waiting for 2 earlier requests" in v.text for v in waiting)


async def test_retry_works_once_per_failure_and_after_a_restart(
    tmp_path: Path, fake: FakeEngine
) -> None:
    def factory(spec: ModelSpec) -> Engine:
        return fake

    config = Config(db_path=tmp_path / "ct.db", model="fake:echo", rate_limit_per_minute=0)
    app = await build(config, engine_factory=factory)
    surface = RecordingSurface()
    fake.fail = EngineUnavailable("The model server answered 500.")
    key = await opened(app, surface, "write a parser")
    [failed] = surface.messages().values()
    assert isinstance(failed, FailureCard) and "500" in failed.text
    [retry, delete] = failed.actions
    assert retry.kind == "retry" and retry.failure is not None and delete.kind == "delete"
    await app.aclose()

    fake.fail = None
    fake.responder = lambda r: fenced("parse = 1")
    app = await build(config, engine_factory=factory)  # a new process, the same database
    try:
        surface = RecordingSurface()
        button = Action.decode(retry.encode())  # as a platform button keeps it
        assert button is not None
        await app.presenter.act(surface, SLACKER, button)
        [done] = surface.messages().values()
        assert isinstance(done, VersionCard) and "parse = 1" in done.text
        assert fake.requests[-1].messages[-1].content == "write a parser"

        await app.presenter.act(surface, SLACKER, button)  # a second press of the same button
        [told] = surface.told()
        assert "Nothing to retry" in told.text and len(surface.messages()) == 1
        session = await app.service.find(key)
        assert session is not None and session.version_count == 1
    finally:
        await app.aclose()


async def test_a_cancelled_turn_never_leaves_writing_behind(app: App, fake: FakeEngine) -> None:
    fake.delay, fake.chunk_size = 0.05, 2
    surface = RecordingSurface()
    task = asyncio.create_task(opened(app, surface))
    while not surface.messages():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [last] = surface.messages().values()
    assert isinstance(last, Status) and "interrupted" in last.text


async def test_a_durable_turn_records_its_message_and_says_it_comes_again(
    app: App, fake: FakeEngine
) -> None:
    from bot.present.journal import Journaled

    fake.delay, fake.chunk_size = 0.05, 2
    surface, recorded = RecordingSurface(), []

    async def record(handle: object) -> None:
        recorded.append(handle)

    journaled = Journaled(surface, record, lambda handle: {"id": handle})
    task = asyncio.create_task(opened(app, journaled))  # type: ignore[arg-type]
    while not surface.messages():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [(handle, last)] = surface.messages().items()
    assert recorded == [{"id": handle}]  # where the next attempt finds it
    assert "answered again" in last.text


async def test_a_refused_final_edit_is_posted_anew(app: App, fake: FakeEngine) -> None:
    fake.responder = lambda r: fenced("y = 2")
    surface = RecordingSurface()
    key = await opened(app, surface)
    surface.refuse.add("edit")
    session = await app.service.find(key)
    assert session is not None
    await app.presenter.turn(surface, lambda: app.service.turn(session, SLACKER, "again"))
    posts = [c for c in surface.calls if c.verb == "post"]
    assert isinstance(posts[-1].view, VersionCard) and "y = 2" in posts[-1].view.text


async def test_delete_is_for_the_owner_and_tidies_the_thread(app: App) -> None:
    surface = RecordingSurface()
    key = await opened(app, surface)
    session = await app.service.find(key)
    assert session is not None
    bob = Caller(platform="slack", workspace="T1", user="U2", channel="C1")
    await app.presenter.act(surface, bob, Action(kind="delete", session_id=session.id))
    assert "belongs to someone else" in surface.told()[-1].text
    await app.presenter.act(surface, SLACKER, Action(kind="delete", session_id=session.id))
    assert surface.told()[-1].text.startswith(f"Deleted snippet #{session.id}")
    [closed] = [c.view for c in surface.calls if c.verb == "close"]
    assert closed is not None and "was deleted by @U1" in closed.text
    assert await app.service.find(key) is None


async def test_snippets_list_and_show_are_private_and_scoped(app: App) -> None:
    surface = RecordingSurface()
    await opened(app, surface, "alice's snippet")
    await app.presenter.list(surface, SLACKER)
    listing = surface.told()[-1]
    assert "alice's snippet" in listing.text and "https://chat.example/" in listing.text
    other = Caller(platform="slack", workspace="T2", user="U1", channel="C9")
    await app.presenter.list(surface, other)
    assert "no snippets" in surface.told()[-1].text
    await app.presenter.show_version(surface, other, 1, None)
    assert "No snippet session 1" in surface.told()[-1].text  # another workspace: not found


async def test_a_repair_ends_with_how_it_went(app: App, fake: FakeEngine) -> None:
    if not app.runs.can_run:
        pytest.skip("no sandbox here")
    tests = "import unittest\nfrom snippet import add\n\nclass T(unittest.TestCase):\n"
    tests += "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    codes = iter(["def add(a, b):\n    return a - b", "def add(a, b):\n    return a + b"])
    fake.responder = lambda r: (
        fenced(tests) if r.messages[0].content.startswith("You write unit tests")
        else fenced(next(codes))
    )  # fmt: skip
    surface = RecordingSurface()
    key = await opened(app, surface, "add two numbers")
    session = await app.service.find(key)
    assert session is not None
    await app.presenter.repair(surface, SLACKER, session.id)
    assert surface.told()[-1].text == "✅ Repair done: the tests pass after 1 fix."
    shown = list(surface.messages().values())
    assert [type(v).__name__ for v in shown] == ["VersionCard", "RunCard", "VersionCard", "RunCard"]


async def test_diff_revert_and_download_buttons(app: App, fake: FakeEngine) -> None:
    answers = iter([fenced("a = 1"), fenced("a = 2")])
    fake.responder = lambda r: next(answers)
    surface = RecordingSurface()
    key = await opened(app, surface, "a")
    session = await app.service.find(key)
    assert session is not None
    await app.presenter.turn(surface, lambda: app.service.reply(SLACKER, key, "two"))
    [*_, v2] = surface.messages().values()
    assert isinstance(v2, VersionCard)
    assert [a.kind for a in v2.actions if a.kind in ("diff", "download")] == ["diff", "download"]

    await app.presenter.act(surface, SLACKER, Action(kind="diff", session_id=session.id, number=2))
    diff = list(surface.messages().values())[-1]
    assert "Version 1 → 2" in diff.text and "-a = 1\n+a = 2" in diff.text

    await app.presenter.act(
        surface, SLACKER, Action(kind="download", session_id=session.id, number=1)
    )
    download = list(surface.messages().values())[-1]
    assert download.file is not None and download.file.content == "a = 1"
    assert download.file.filename == "snippet.py"

    await app.presenter.act(
        surface, SLACKER, Action(kind="revert", session_id=session.id, number=1)
    )
    reverted = list(surface.messages().values())[-1]
    assert isinstance(reverted, VersionCard) and "Version 3 of" in reverted.text
    assert reverted.code == "a = 1" and surface.told() == []

    await app.presenter.show_version(surface, SLACKER, session.id, 2)  # an older version
    assert [a.kind for a in surface.told()[-1].actions][-2:] == ["revert", "download"]
