"""Files in (a session's attachments: stored, told to the model, beside every run) and files
out (what a run wrote, kept with it and shown), through the real core, store and sandbox."""

from __future__ import annotations

import itertools

import pytest

from bot import files
from bot.app import App
from bot.errors import SessionNotFound
from bot.present.testing import RecordingSurface
from bot.present.views import Notice, RunCard
from bot.values import Attached, Caller, Done, RunReport, Upload
from engines import FakeEngine
from storage import Session, SessionKey

from .conftest import CALLER, collect, fenced

_threads = itertools.count()

CSV = b"name,qty,price\napple,3,10\npear,4,20\n"
SUM = (
    "import csv\n"
    "rows = list(csv.reader(open('data.csv')))\n"
    "print(sum(int(r[2]) for r in rows[1:]))\n"
)


def upload(name: str, data: bytes) -> Upload:
    return Upload(name=name, size=len(data), data=data)


async def new_session(app: App, prompt: str = "sum column 3") -> Session:
    key = SessionKey(platform="console", workspace="local", channel="t", thread=f"{next(_threads)}")
    return await app.service.start(caller=CALLER, key=key, prompt=prompt, language="python")


# -- the rules, as plain functions ---------------------------------------------------------------


def test_names_are_made_safe_for_the_work_dir() -> None:
    assert files.safe_name("../My Data (1).csv") == "My_Data_1_.csv"
    assert files.safe_name(".bashrc") == "bashrc"
    assert files.safe_name("C:\\Users\\x\\report.xlsx") == "report.xlsx"
    assert files.safe_name("???") == "file"
    assert len(files.safe_name("a" * 300 + ".csv")) == 100


def test_a_lone_pasted_message_txt_is_the_turns_text() -> None:
    pasted = upload("message.txt", b"a very long request")
    assert files.as_text("", [pasted]) == ("a very long request", ())
    assert files.as_text("see this", [pasted]) == ("see this", (pasted,))
    other = upload("data.txt", b"x")
    assert files.as_text("", [other]) == ("", (other,))


def test_the_model_is_told_names_sizes_and_the_head_of_text_files() -> None:
    from storage import SessionFile

    text = SessionFile(id=1, session_id=1, name="data.csv", size=len(CSV), data=CSV, created_at=0)
    blob = SessionFile(id=2, session_id=1, name="x.bin", size=3, data=b"\0\1\2", created_at=0)
    told = files.describe([text, blob])
    assert "`data.csv` (36 B)" in told and "name,qty,price" in told
    assert "`x.bin` (3 B)" in told and "\0" not in told
    assert files.describe([]) == ""


# -- the core ------------------------------------------------------------------------------------


async def test_files_with_a_reply_are_stored_then_the_turn_sees_them(
    app: App, fake: FakeEngine
) -> None:
    session = await new_session(app)
    fake.responder = lambda r: fenced(SUM)
    events = await collect(
        app.service.turn(session, CALLER, "sum the price column", uploads=[upload("data.csv", CSV)])
    )
    attached = events[0]
    assert isinstance(attached, Attached) and [f.name for f in attached.stored] == ["data.csv"]
    assert isinstance(events[-1], Done) and events[-1].version.request == "sum the price column"
    request = fake.requests[-1]
    assert "data.csv" not in request.messages[0].content  # never in the system prompt
    assert "`data.csv` (36 B)" in request.messages[-1].content
    assert "apple,3,10" in request.messages[-1].content
    stored = await app.store.list_files(session.id)
    assert [(f.name, f.data) for f in stored] == [("data.csv", CSV)]


async def test_files_alone_make_no_version(app: App, fake: FakeEngine) -> None:
    session = await new_session(app)
    events = await collect(app.service.turn(session, CALLER, "", uploads=[upload("a.txt", b"hi")]))
    assert [type(e) for e in events] == [Attached]
    assert fake.requests == [] and (await app.service.get(session.id)).version_count == 0


async def test_files_over_the_limits_are_refused_by_name_and_the_rest_kept(app: App) -> None:
    session = await new_session(app)
    big = Upload(name="huge.csv", size=files.MAX_FILE_BYTES + 1, data=None)  # never fetched
    many = [upload(f"f{i}.txt", b"x") for i in range(files.MAX_FILES)]
    event = await app.service.attach(session, CALLER, [big, *many, upload("one-more.txt", b"y")])
    assert [name for name, _ in event.refused] == ["huge.csv", "one-more.txt"]
    assert [reason for _, reason in event.refused] == ["too_big", "too_many"]
    assert len(event.stored) == files.MAX_FILES
    again = await app.service.attach(session, CALLER, [upload("f0.txt", b"new")])  # replaces
    assert again.refused == () and len(await app.store.list_files(session.id)) == files.MAX_FILES
    session2 = await new_session(app)
    half = b"x" * (files.MAX_FILE_BYTES - 10)
    event = await app.service.attach(session2, CALLER, [upload("a", half), upload("b", half)])
    assert event.refused == (("b", "too_much"),)


async def test_only_those_who_see_a_session_attach_to_it(app: App) -> None:
    session = await new_session(app)
    stranger = Caller(platform="slack", workspace="T9", user="eve")
    with pytest.raises(SessionNotFound):
        await app.service.attach(session, stranger, [upload("a.txt", b"x")])
    with pytest.raises(SessionNotFound):
        await app.service.files(session.id, stranger)


async def test_a_run_reads_the_files_and_its_own_files_are_kept(app: App, fake: FakeEngine) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")
    session = await new_session(app)
    code = SUM + "open('plot.png', 'wb').write(bytes(range(256)))\n"
    fake.responder = lambda r: fenced(code)
    await collect(app.service.turn(session, CALLER, "go", uploads=[upload("data.csv", CSV)]))
    report = await app.runs.run(session.id, CALLER)
    assert report.result.stdout == "30\n", report.result
    assert [(a.name, a.data) for a in report.result.artifacts] == [("plot.png", bytes(range(256)))]
    run = await app.store.latest_run(report.version.id)
    assert run is not None and run.artifacts == ("plot.png",)
    kept = await app.store.list_artifacts(run.id)
    assert [(a.name, a.data) for a in kept] == [("plot.png", bytes(range(256)))]


# -- the presenter -------------------------------------------------------------------------------


async def test_the_thread_is_told_what_was_attached_and_refused(app: App) -> None:
    session = await new_session(app)
    surface = RecordingSurface()
    big = Upload(name="huge.csv", size=files.MAX_FILE_BYTES + 1, data=None)
    await app.presenter.attach(surface, CALLER, session, [upload("data.csv", CSV), big])
    (posted,) = surface.messages().values()
    assert isinstance(posted, Notice)
    assert "Attached `data.csv` (36 B)" in posted.text
    assert "`huge.csv` was not attached: over 2.0 MB, the limit for one file." in posted.text
    await app.presenter.files(surface, CALLER, session.id)
    listed = surface.told()[-1]
    assert "**Files of #" in listed.text and "`data.csv` · 36 B" in listed.text


async def test_a_run_card_carries_the_files_the_run_made(app: App, fake: FakeEngine) -> None:
    if not app.runs.can_run:
        pytest.skip(f"no sandbox here: {app.runs._disabled}")
    session = await new_session(app)
    fake.responder = lambda r: fenced("open('out.txt', 'w').write('made')\nprint('ok')")
    await collect(app.service.turn(session, CALLER, "go"))
    surface = RecordingSurface()
    report = await app.presenter.run(surface, CALLER, session.id)
    assert isinstance(report, RunReport)
    card = list(surface.messages().values())[-1]
    assert isinstance(card, RunCard)
    assert [(o.filename, o.payload, o.image) for o in card.outputs] == [("out.txt", b"made", False)]
    assert "📎 Made `out.txt`." in card.text
    assert (card.session_id, card.number) == (session.id, 1)
