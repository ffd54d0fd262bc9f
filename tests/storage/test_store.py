"""Store, on both backends: sessions, versions, runs, failures, files, scoping, atomic
numbering, persistence."""

from __future__ import annotations

import asyncio
import random

import pytest

from storage import (
    ConstraintViolation,
    Failure,
    Run,
    RunArtifact,
    Session,
    SessionExists,
    SessionFile,
    SessionGone,
    SessionKey,
    Store,
    StoreError,
    VersionNotFound,
)
from tests.storage.conftest import Database


def key(thread: str = "t1", *, platform: str = "slack", workspace: str = "T1") -> SessionKey:
    return SessionKey(platform=platform, workspace=workspace, channel="C1", thread=thread)


async def new_session(store: Store, thread: str = "t1", owner: str = "alice", **where: str) -> int:
    session = await store.create_session(
        key=key(thread, **where), owner=owner, language="python", model="fake", title=thread
    )
    return session.id


async def add_version_id(store: Store, session_id: int) -> int:
    version = await store.add_version(
        session_id,
        request="make it",
        code="print(1)",
        note="",
        model="fake",
        prompt_tokens=None,
        completion_tokens=None,
        latency_ms=5,
    )
    return version.id


async def add_run(store: Store, version_id: int, **changes: object) -> Run:
    fields: dict[str, object] = {
        "kind": "run", "status": "ok", "exit_code": 0, "stdout": "1\n", "stderr": "",
        "duration_ms": 31, "peak_memory_kb": 8400, "limit_hit": None, "compile_output": "",
    }  # fmt: skip
    fields.update(changes)
    return await store.add_run(version_id, **fields)  # type: ignore[arg-type]


async def add(store: Store, session_id: int, code: str = "print(1)") -> int:
    version = await store.add_version(
        session_id,
        request="make it",
        code=code,
        note="",
        model="fake",
        prompt_tokens=10,
        completion_tokens=20,
        latency_ms=5,
    )
    return version.number


# -- opening ---------------------------------------------------------------------------------


async def test_data_persists_across_close_and_reopen(db: Database) -> None:
    async with await db.open() as store:
        session_id = await new_session(store)
        await add(store, session_id, code="x = 'kept'")

    async with await db.open() as store:
        session = await store.get_session(session_id)
        latest = await store.get_version(session_id)
    assert session is not None
    assert session.key == key() and session.version_count == 1
    assert latest is not None and latest.code == "x = 'kept'"


async def test_a_closed_store_refuses_work(db: Database) -> None:
    store = await db.open()
    await store.close()
    await store.close()  # twice is fine

    with pytest.raises(StoreError, match="closed"):
        await store.list_sessions()
    with pytest.raises(StoreError, match="closed"):
        await new_session(store)
    with pytest.raises(StoreError, match="closed"):
        await store.claim_job("w1", stale_after=30)


# -- sessions --------------------------------------------------------------------------------


async def test_create_get_and_find_session(store: Store) -> None:
    created = await store.create_session(
        key=key(), owner="alice", language="python", model="fake", title="fizzbuzz"
    )

    assert created.owner == "alice" and created.title == "fizzbuzz"
    assert created.created_at == created.updated_at == 1_001.0
    assert created.version_count == 0
    assert await store.get_session(created.id) == created
    assert await store.find_session(key()) == created
    assert await store.find_session(key("other")) is None
    assert await store.get_session(created.id + 1) is None


async def test_duplicate_key_raises_session_exists(store: Store) -> None:
    await new_session(store, "t1")

    with pytest.raises(SessionExists) as caught:
        await new_session(store, "t1", owner="bob")
    assert caught.value.key == key("t1")

    await new_session(store, "t1", platform="discord")  # same thread id, other platform: fine
    assert len(await store.list_sessions()) == 2


async def test_values_are_stored_verbatim(store: Store) -> None:
    nasty = 'Robert\'); DROP TABLE sessions; -- "quoted" ? :name %s \\ \n\t ünï 😀'
    odd_key = SessionKey(platform="slack", workspace="T'1", channel='C"1', thread="1 OR 1=1")
    session = await store.create_session(
        key=odd_key, owner=nasty, language="python", model="fake", title=nasty
    )
    version = await store.add_version(
        session.id,
        request=nasty,
        code=nasty,
        note=nasty,
        model=nasty,
        prompt_tokens=None,
        completion_tokens=None,
        latency_ms=0,
    )

    found = await store.find_session(odd_key)
    assert found is not None and found.title == nasty and found.owner == nasty
    assert await store.get_version(session.id) == version
    assert (version.request, version.code, version.note) == (nasty, nasty, nasty)
    assert [s.id for s in await store.list_sessions(owner=nasty)] == [session.id]
    assert await store.find_session(key("1")) is None


# -- listing ---------------------------------------------------------------------------------


async def test_list_sessions_scopes_orders_limits_and_counts(store: Store) -> None:
    a1 = await new_session(store, "a1", owner="alice")
    a2 = await new_session(store, "a2", owner="alice")
    a3 = await new_session(store, "a3", owner="alice")
    other_ws = await new_session(store, "a4", owner="alice", workspace="T2")
    other_platform = await new_session(store, "a5", owner="alice", platform="discord")
    bob = await new_session(store, "b1", owner="bob")
    await add(store, a1)  # a1 is now the most recently updated
    await add(store, a1)
    await add(store, a2)

    def ids(sessions: list[Session]) -> list[int]:
        return [s.id for s in sessions]

    mine = await store.list_sessions(owner="alice", platform="slack", workspace="T1")
    assert ids(mine) == [a2, a1, a3]
    assert [s.version_count for s in mine] == [1, 2, 0]
    assert ids(await store.list_sessions(owner="alice")) == [a2, a1, other_platform, other_ws, a3]
    assert ids(await store.list_sessions(owner="alice", platform="slack")) == [a2, a1, other_ws, a3]
    assert ids(await store.list_sessions(platform="slack", workspace="T1")) == [a2, a1, bob, a3]
    assert ids(await store.list_sessions(owner="bob")) == [bob]
    assert await store.list_sessions(owner="carol") == []
    assert len(await store.list_sessions()) == 6
    assert ids(await store.list_sessions(owner="alice", limit=2)) == [a2, a1]
    assert await store.list_sessions(limit=0) == []
    with pytest.raises(ValueError):
        await store.list_sessions(limit=-1)


async def test_list_sessions_ties_break_by_newest_id(db: Database) -> None:
    async with await db.open(clock=lambda: 42.0) as store:
        first = await new_session(store, "x")
        second = await new_session(store, "y")
        assert [s.id for s in await store.list_sessions(owner="alice")] == [second, first]


async def test_list_sessions_searches_titles_and_requests(store: Store) -> None:
    fizz = await new_session(store, "fizzbuzz in rust")
    csv = await new_session(store, "parse a csv")
    await store.add_version(
        csv, request="handle 100% empty_files", code="x", note="", model="fake",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip

    async def ids(text: str) -> list[int]:
        return [s.id for s in await store.list_sessions(owner="alice", search=text)]

    assert await ids("FIZZBUZZ") == [fizz]
    assert await ids("empty_files") == [csv]
    assert await ids("100%") == [csv]
    assert await ids("%") == [csv] and await ids("_") == [csv]  # wildcards match themselves
    assert await ids("'; DROP TABLE sessions; --") == []
    assert set(await ids("")) == {fizz, csv}  # no text: no filter


async def test_search_finds_notes_and_code_through_the_index_and_forgets_deleted(
    store: Store,
) -> None:
    plot = await new_session(store, "draw a chart")
    await store.add_version(
        plot, request="draw it", code="import matplotlib.pyplot as plt\nplt.savefig('a.png')",
        note="Uses Matplotlib's pyplot.", model="fake",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip

    async def ids(text: str) -> list[int]:
        return [s.id for s in await store.list_sessions(owner="alice", search=text)]

    assert await ids("savefig") == [plot]  # code
    assert await ids("MATPLOTLIB'S") == [plot]  # note, any case, a quote inside
    assert await ids('"a.png"') == []  # quotes are text, not FTS syntax
    assert await ids("plt") == [plot]
    await store.delete_session(plot)
    assert await ids("savefig") == []


async def test_list_sessions_can_leave_out_sessions_without_versions(store: Store) -> None:
    empty = await new_session(store, "empty")
    full = await new_session(store, "full")
    await add_version_id(store, full)
    assert [s.id for s in await store.list_sessions()] == [full, empty]
    assert [s.id for s in await store.list_sessions(with_versions=True)] == [full]


async def test_prune_empty_removes_only_old_sessions_without_versions(db: Database) -> None:
    now = [1_000_000.0]
    async with await db.open(clock=lambda: now[0]) as store:
        old_empty = await new_session(store, "old empty")
        old_full = await new_session(store, "old full")
        await add_version_id(store, old_full)
        retried = await new_session(store, "failed, retried later")
        now[0] += 2 * 86400
        await store.add_failure(retried, request="make it", message="the model failed")
        fresh_empty = await new_session(store, "fresh empty")
        assert await store.prune_empty(older_than=86400) == 1
        assert await store.get_session(old_empty) is None
        kept = [s.id for s in await store.list_sessions()]
        assert sorted(kept) == sorted([old_full, retried, fresh_empty])
        assert await store.prune_empty(older_than=86400) == 0


# -- versions --------------------------------------------------------------------------------


async def test_versions_are_numbered_and_bump_the_session(store: Store) -> None:
    session_id = await new_session(store)

    assert [await add(store, session_id, code=f"v{n}") for n in range(3)] == [1, 2, 3]

    versions = await store.list_versions(session_id)
    assert [(v.number, v.code, v.status) for v in versions] == [
        (1, "v0", "ok"),
        (2, "v1", "ok"),
        (3, "v2", "ok"),
    ]
    session = await store.get_session(session_id)
    assert session is not None
    assert session.version_count == 3
    assert session.updated_at == versions[-1].created_at > session.created_at


async def test_get_version_latest_or_numbered(store: Store) -> None:
    session_id = await new_session(store)
    assert await store.get_version(session_id) is None

    for n in range(3):
        await add(store, session_id, code=f"v{n + 1}")

    latest = await store.get_version(session_id)
    second = await store.get_version(session_id, 2)
    assert latest is not None and (latest.number, latest.code) == (3, "v3")
    assert second is not None and (second.number, second.code) == (2, "v2")
    assert await store.get_version(session_id, 4) is None
    assert await store.get_version(session_id + 1) is None


async def test_concurrent_add_version_gets_consecutive_numbers(store: Store) -> None:
    session_id = await new_session(store)

    numbers = await asyncio.gather(*(add(store, session_id, code=str(i)) for i in range(25)))

    assert sorted(numbers) == list(range(1, 26))
    assert [v.number for v in await store.list_versions(session_id)] == list(range(1, 26))


async def test_concurrent_add_version_from_two_connections(store: Store, db: Database) -> None:
    session_id = await new_session(store)
    async with await db.open() as other:
        numbers = await asyncio.gather(
            *(add(s, session_id) for _ in range(10) for s in (store, other))
        )
    assert sorted(numbers) == list(range(1, 21))


async def test_add_version_to_missing_session(store: Store, db: Database) -> None:
    with pytest.raises(SessionGone, match="No session with id 404"):
        await add(store, 404)
    assert await db.rows("SELECT COUNT(*) FROM versions") == [(0,)]


async def test_failed_write_rolls_back_and_store_stays_usable(store: Store) -> None:
    session_id = await new_session(store)

    with pytest.raises(ConstraintViolation):
        await store.add_version(
            session_id,
            request="r",
            code="c",
            note="",
            model="fake",
            prompt_tokens=None,
            completion_tokens=None,
            latency_ms=1,
            status="weird",  # type: ignore[arg-type]
        )

    assert await add(store, session_id) == 1


async def test_cancelled_add_version_leaves_store_usable(store: Store) -> None:
    session_id = await new_session(store)
    task = asyncio.create_task(add(store, session_id))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    number = await add(store, session_id)

    assert [v.number for v in await store.list_versions(session_id)] == list(range(1, number + 1))


# -- deleting --------------------------------------------------------------------------------


async def test_delete_session_cascades_to_versions(store: Store, db: Database) -> None:
    doomed = await new_session(store, "t1")
    kept = await new_session(store, "t2")
    for session_id in (doomed, doomed, kept):
        await add(store, session_id)

    assert await store.delete_session(doomed) is True

    assert await store.get_session(doomed) is None
    assert await store.list_versions(doomed) == []
    assert await db.rows("SELECT session_id, COUNT(*) FROM versions GROUP BY session_id") == [
        (kept, 1)
    ]
    assert await store.delete_session(doomed) is False
    assert await store.delete_session(9999) is False
    await new_session(store, "t1")  # the thread is free again


# -- runs ------------------------------------------------------------------------------------


async def test_runs_are_stored_and_the_latest_found(store: Store, db: Database) -> None:
    session_id = await new_session(store)
    first, second = [await add_version_id(store, session_id) for _ in range(2)]
    before = await store.get_session(session_id)

    ok = await add_run(store, first)
    limited = await add_run(
        store, first, kind="test", status="limit", exit_code=None, stdout="", stderr="x" * 70_000,
        duration_ms=5000, peak_memory_kb=None, limit_hit="wall_time", compile_output="warning",
        tests="import unittest",
    )  # fmt: skip

    assert ok == Run(
        id=ok.id, version_id=first, kind="run", status="ok", exit_code=0, stdout="1\n", stderr="",
        duration_ms=31, peak_memory_kb=8400, limit_hit=None, compile_output="", tests="",
        created_at=ok.created_at, version_number=1,
    )  # fmt: skip
    assert limited.tests == "import unittest"
    assert await store.latest_run(first) == limited
    assert await store.latest_run(second) is None
    assert await store.get_session(session_id) == before  # running is not editing
    assert await db.rows("SELECT COUNT(*) FROM runs") == [(2,)]


async def test_run_of_a_missing_version(store: Store, db: Database) -> None:
    with pytest.raises(VersionNotFound, match="No version with id 404"):
        await add_run(store, 404)
    assert await db.rows("SELECT COUNT(*) FROM runs") == [(0,)]


@pytest.mark.parametrize("bad", [{"kind": "bench"}, {"status": "weird"}, {"limit_hit": "disk"}])
async def test_run_values_outside_the_schema_are_refused(
    store: Store, bad: dict[str, object]
) -> None:
    version_id = await add_version_id(store, await new_session(store))

    with pytest.raises(ConstraintViolation):
        await add_run(store, version_id, **bad)

    assert await store.latest_run(version_id) is None
    assert (await add_run(store, version_id)).status == "ok"


async def test_deleting_a_session_deletes_its_runs(store: Store, db: Database) -> None:
    doomed = await new_session(store, "t1")
    kept = await new_session(store, "t2")
    doomed_version = await add_version_id(store, doomed)
    kept_version = await add_version_id(store, kept)
    for version_id in (doomed_version, doomed_version, kept_version):
        await add_run(store, version_id)

    await store.delete_session(doomed)

    assert await store.latest_run(doomed_version) is None
    assert await db.rows("SELECT version_id, COUNT(*) FROM runs GROUP BY version_id") == [
        (kept_version, 1)
    ]


# -- failures --------------------------------------------------------------------------------


async def add_failure(store: Store, session_id: int, request: str = "make it") -> Failure:
    return await store.add_failure(session_id, request=request, message="server down")


async def test_a_failure_is_kept_and_taken_once(store: Store) -> None:
    session_id = await new_session(store)
    other_session = await new_session(store, "t2")
    await add_failure(store, other_session, "not this one")

    failure = await add_failure(store, session_id, "write fizzbuzz")

    assert failure == Failure(
        id=failure.id, session_id=session_id, request="write fizzbuzz", message="server down",
        created_at=failure.created_at,
    )  # fmt: skip
    assert await store.latest_failure(session_id) == failure
    assert await store.latest_failure(session_id) == failure  # reading takes nothing
    assert await store.take_failure(session_id) == failure
    assert await store.take_failure(session_id) is None  # already retried
    assert await store.latest_failure(session_id) is None
    left = await store.latest_failure(other_session)
    assert left is not None and left.request == "not this one"


async def test_a_session_keeps_only_its_latest_failure_until_a_new_version(
    store: Store, db: Database
) -> None:
    session_id = await new_session(store)
    other_session = await new_session(store, "t2")
    first, second = [await add_failure(store, session_id, f"r{n}") for n in range(2)]
    foreign = await add_failure(store, other_session)

    assert await store.take_failure(session_id, first.id) is None  # superseded by the second
    assert await store.take_failure(session_id, foreign.id) is None  # another session's
    assert await store.latest_failure(session_id) == second
    assert await store.take_failure(session_id, second.id) == second
    assert await store.take_failure(session_id, second.id) is None

    await add_failure(store, session_id, "again")
    await store.add_version(
        session_id, request="again", code="x = 1", note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip
    assert await store.latest_failure(session_id) is None  # the new version made it stale
    assert await db.rows("SELECT session_id FROM failures") == [(other_session,)]


async def test_concurrent_takes_get_a_failure_once(store: Store, db: Database) -> None:
    session_id = await new_session(store)
    failure = await add_failure(store, session_id)

    async with await db.open() as other:
        taken = await asyncio.gather(
            *(s.take_failure(session_id, failure.id) for _ in range(5) for s in (store, other))
        )

    assert [t for t in taken if t is not None] == [failure]


async def test_concurrent_failures_of_one_session_leave_only_the_latest(
    store: Store, db: Database
) -> None:
    session_id = await new_session(store)
    async with await db.open() as other:
        await asyncio.gather(
            *(add_failure(s, session_id, f"r{n}") for n in range(5) for s in (store, other))
        )

    assert await db.rows("SELECT COUNT(*) FROM failures") == [(1,)]
    assert await store.latest_failure(session_id) is not None


async def test_failures_survive_a_restart(db: Database) -> None:
    async with await db.open() as store:
        session_id = await new_session(store)
        failure = await add_failure(store, session_id)

    async with await db.open() as store:
        assert await store.take_failure(session_id) == failure


async def test_clear_failures_forgets_only_that_session(store: Store) -> None:
    session_id = await new_session(store)
    other_session = await new_session(store, "t2")
    for _ in range(3):
        await add_failure(store, session_id)
    kept = await add_failure(store, other_session)

    await store.clear_failures(session_id)
    await store.clear_failures(9999)  # no such session: nothing to do

    assert await store.latest_failure(session_id) is None
    assert await store.latest_failure(other_session) == kept


async def test_failure_of_a_missing_session(store: Store, db: Database) -> None:
    with pytest.raises(SessionGone) as caught:
        await add_failure(store, 404)
    assert caught.value.session_id == 404
    assert await db.rows("SELECT COUNT(*) FROM failures") == [(0,)]
    assert await store.take_failure(404) is None
    assert await store.latest_failure(404) is None


async def test_deleting_a_session_deletes_its_failures(store: Store, db: Database) -> None:
    doomed = await new_session(store, "t1")
    kept = await new_session(store, "t2")
    await add_failure(store, doomed)
    await add_failure(store, kept)

    await store.delete_session(doomed)

    assert await store.take_failure(doomed) is None
    assert await db.rows("SELECT session_id FROM failures") == [(kept,)]


async def test_a_run_keeps_its_input_and_arguments(store: Store) -> None:
    session_id = await new_session(store)
    version = await store.add_version(
        session_id, request="r", code="x", note="", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=1,
    )  # fmt: skip
    run = await store.add_run(
        version.id, kind="run", status="ok", exit_code=0, stdout="", stderr="",
        duration_ms=1, peak_memory_kb=None, limit_hit=None, compile_output="",
        stdin="a,b\n1,2\n", args=["--sum", "3"],
    )  # fmt: skip
    assert (run.stdin, run.args) == ("a,b\n1,2\n", ("--sum", "3"))
    assert await store.latest_run(version.id) == run


# -- files -----------------------------------------------------------------------------------


async def test_files_are_attached_listed_in_order_and_deleted(store: Store) -> None:
    session_id = await new_session(store)
    other = await new_session(store, "t2")
    await store.add_file(other, "data.csv", b"not this one")

    csv = await store.add_file(session_id, "data.csv", b"a,b\n1,2\n")
    empty = await store.add_file(session_id, "empty.txt", b"")

    assert csv == SessionFile(
        id=csv.id, session_id=session_id, name="data.csv", size=8, data=b"a,b\n1,2\n",
        created_at=csv.created_at,
    )  # fmt: skip
    assert (empty.size, empty.data) == (0, b"")
    assert await store.list_files(session_id) == [csv, empty]
    assert await store.delete_file(session_id, "data.csv") is True
    assert await store.delete_file(session_id, "data.csv") is False
    assert await store.delete_file(session_id, "missing") is False
    assert await store.list_files(session_id) == [empty]
    assert [f.data for f in await store.list_files(other)] == [b"not this one"]
    assert await store.list_files(9999) == []


async def test_a_file_of_the_same_name_is_replaced(store: Store, db: Database) -> None:
    session_id = await new_session(store)
    first = await store.add_file(session_id, "in.txt", b"old")
    second = await store.add_file(session_id, "b.txt", b"b")

    replaced = await store.add_file(session_id, "in.txt", b"new and longer")

    assert replaced.id == first.id and replaced.created_at > second.created_at
    assert (replaced.size, replaced.data) == (14, b"new and longer")
    assert await store.list_files(session_id) == [second, replaced]  # attached again, last
    assert await db.rows("SELECT COUNT(*) FROM files") == [(2,)]


async def test_concurrent_attaches_of_one_name_leave_one_file(store: Store, db: Database) -> None:
    session_id = await new_session(store)
    async with await db.open() as other:
        attached = await asyncio.gather(
            *(s.add_file(session_id, "in.txt", b"%d" % n) for n in range(5) for s in (store, other))
        )

    assert len({file.id for file in attached}) == 1
    assert await db.rows("SELECT COUNT(*) FROM files") == [(1,)]


async def test_attaching_or_replacing_a_file_touches_the_session(store: Store) -> None:
    session_id = await new_session(store)
    for _ in range(2):  # the insert, then the upsert's update
        attached = await store.add_file(session_id, "in.txt", b"x")
        session = await store.get_session(session_id)
        assert session is not None and session.updated_at == attached.created_at


async def test_file_bytes_are_kept_exactly(store: Store) -> None:
    session_id = await new_session(store)
    data = bytes(range(256)) * 3 + b"\x00" + random.Random(7).randbytes(100_000)
    name = "dir/ünï 😀'; DROP TABLE files; --.bin"

    await store.add_file(session_id, name, data)

    (found,) = await store.list_files(session_id)
    assert (found.name, found.size, found.data) == (name, len(data), data)
    assert type(found.data) is bytes


async def test_file_for_a_missing_session(store: Store, db: Database) -> None:
    with pytest.raises(SessionGone) as caught:
        await store.add_file(404, "in.txt", b"x")
    assert caught.value.session_id == 404
    assert await db.rows("SELECT COUNT(*) FROM files") == [(0,)]


async def test_files_survive_a_restart(db: Database) -> None:
    async with await db.open() as store:
        session_id = await new_session(store)
        attached = await store.add_file(session_id, "in.txt", b"kept")

    async with await db.open() as store:
        assert await store.list_files(session_id) == [attached]


# -- artifacts -------------------------------------------------------------------------------


async def test_artifacts_are_stored_with_their_run(store: Store) -> None:
    version_id = await add_version_id(store, await new_session(store))
    png = b"\x89PNG\r\n\x1a\n" + random.Random(3).randbytes(5000)

    run = await add_run(
        store, version_id, artifacts=[("plot.png", png), ("out.csv", b"a\n"), ("empty", b"")]
    )
    bare = await add_run(store, version_id)

    assert run.artifacts == ("empty", "out.csv", "plot.png")
    assert bare.artifacts == ()
    assert await store.latest_run(version_id) == bare
    assert await store.list_artifacts(bare.id) == []
    listed = await store.list_artifacts(run.id)
    assert listed == [
        RunArtifact(id=listed[0].id, run_id=run.id, name="empty", size=0, data=b""),
        RunArtifact(id=listed[1].id, run_id=run.id, name="out.csv", size=2, data=b"a\n"),
        RunArtifact(id=listed[2].id, run_id=run.id, name="plot.png", size=len(png), data=png),
    ]
    assert await store.list_artifacts(9999) == []


async def test_latest_run_names_its_artifacts(store: Store) -> None:
    version_id = await add_version_id(store, await new_session(store))
    await add_run(store, version_id, artifacts=[("old.txt", b"1")])

    run = await add_run(store, version_id, artifacts=[("b.txt", b"2"), ("a 'quoted\".txt", b"3")])

    latest = await store.latest_run(version_id)
    assert latest == run
    assert latest.artifacts == ("a 'quoted\".txt", "b.txt")


async def test_a_run_with_two_artifacts_of_one_name_writes_nothing(
    store: Store, db: Database
) -> None:
    version_id = await add_version_id(store, await new_session(store))

    with pytest.raises(ConstraintViolation):
        await add_run(store, version_id, artifacts=[("out.txt", b"1"), ("out.txt", b"2")])

    assert await store.latest_run(version_id) is None
    assert await db.rows("SELECT COUNT(*) FROM artifacts") == [(0,)]
    assert (await add_run(store, version_id, artifacts=[("out.txt", b"1")])).artifacts == (
        "out.txt",
    )


async def test_deleting_a_session_deletes_its_files_and_artifacts(
    store: Store, db: Database
) -> None:
    doomed = await new_session(store, "t1")
    kept = await new_session(store, "t2")
    for session_id in (doomed, kept):
        await store.add_file(session_id, "in.txt", b"x")
        run = await add_run(
            store, await add_version_id(store, session_id), artifacts=[("out.txt", b"y")]
        )
    kept_run = run.id

    await store.delete_session(doomed)

    assert await store.list_files(doomed) == []
    assert await db.rows("SELECT session_id FROM files") == [(kept,)]
    assert await db.rows("SELECT run_id FROM artifacts") == [(kept_run,)]
