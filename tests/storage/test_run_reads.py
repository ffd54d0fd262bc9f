"""Reading runs back by session and by id, and one artifact by name, on both backends (what
the HTTP API serves): newest first, each run with its version's number and its artifacts'
names, the bytes only when one file is asked for."""

from __future__ import annotations

import pytest

from storage import Run, RunArtifact, SessionKey, Store


async def new_session(store: Store, thread: str) -> int:
    session = await store.create_session(
        key=SessionKey(platform="slack", workspace="T1", channel="C1", thread=thread),
        owner="alice", language="python", model="fake", title=thread,
    )  # fmt: skip
    return session.id


async def new_version(store: Store, session_id: int) -> int:
    version = await store.add_version(
        session_id, request="make it", code="print(1)", note="", model="fake",
        prompt_tokens=None, completion_tokens=None, latency_ms=5,
    )  # fmt: skip
    return version.id


async def add_run(
    store: Store, version_id: int, *, artifacts: list[tuple[str, bytes]] | None = None
) -> Run:
    return await store.add_run(
        version_id, kind="run", status="ok", exit_code=0, stdout="1\n", stderr="",
        duration_ms=31, peak_memory_kb=None, limit_hit=None, compile_output="",
        artifacts=artifacts or [],
    )  # fmt: skip


async def test_a_sessions_runs_newest_first_with_their_version_numbers(store: Store) -> None:
    session_id = await new_session(store, "t1")
    other = await new_session(store, "t2")
    first, second = [await new_version(store, session_id) for _ in range(2)]
    elsewhere = await add_run(store, await new_version(store, other))
    old = await add_run(store, first, artifacts=[("plot.png", b"\x89PNG"), ("a.csv", b"a\n")])
    new = await add_run(store, second)
    again = await add_run(store, first)

    runs = await store.list_runs(session_id)

    assert runs == [again, new, old]  # as add_run returned them
    assert [run.version_number for run in runs] == [1, 2, 1]
    assert runs[2].artifacts == ("a.csv", "plot.png")
    assert await store.list_runs(session_id, limit=2) == [again, new]
    assert await store.list_runs(session_id, limit=0) == []
    assert await store.list_runs(other) == [elsewhere]
    assert elsewhere.version_number == 1
    assert await store.list_runs(404) == []
    assert await store.latest_run(first) == again
    with pytest.raises(ValueError):
        await store.list_runs(session_id, limit=-1)


async def test_a_run_and_an_artifact_by_id_and_name(store: Store) -> None:
    version_id = await new_version(store, await new_session(store, "t1"))
    run = await add_run(store, version_id, artifacts=[("out/plot.png", b"\x89PNG\x00\xff")])
    bare = await add_run(store, version_id)

    assert await store.get_run(run.id) == run
    assert await store.get_run(bare.id) == bare
    assert await store.get_run(bare.id + 100) is None
    artifact = await store.get_artifact(run.id, "out/plot.png")
    assert artifact == RunArtifact(
        id=artifact.id if artifact else 0, run_id=run.id, name="out/plot.png", size=6,
        data=b"\x89PNG\x00\xff",
    )  # fmt: skip
    assert artifact in await store.list_artifacts(run.id)
    assert await store.get_artifact(run.id, "plot.png") is None
    assert await store.get_artifact(run.id, "OUT/PLOT.PNG") is None  # names are exact
    assert await store.get_artifact(bare.id, "out/plot.png") is None  # another run's


async def test_a_deleted_sessions_runs_are_gone(store: Store) -> None:
    session_id = await new_session(store, "t1")
    run = await add_run(store, await new_version(store, session_id), artifacts=[("a", b"1")])

    await store.delete_session(session_id)

    assert await store.list_runs(session_id) == []
    assert await store.get_run(run.id) is None
    assert await store.get_artifact(run.id, "a") is None
