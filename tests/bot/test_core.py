from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App, build
from bot.config import Config
from bot.errors import (
    EmptyPrompt,
    NotOwner,
    PromptTooLong,
    RateLimited,
    SessionNotFound,
    UnknownLanguage,
    UnknownModelRef,
    UserError,
)
from bot.limits import RateLimiter
from bot.values import Caller, Done, Failed, NonCode, Progress, Reply, Started, Waiting
from engines import EngineUnavailable, FakeEngine, GenerationRequest
from storage import SessionKey

from .conftest import CALLER, both_backends, collect, fenced

#: every test here runs on SQLite and on a real PostgreSQL
db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)

_threads = itertools.count()


def key() -> SessionKey:
    return SessionKey(
        platform="console", workspace="local", channel="terminal", thread=f"t{next(_threads)}"
    )


async def test_first_turn_makes_version_one_with_note(app: App, fake: FakeEngine) -> None:
    fake.responder = lambda r: fenced("print('hi')", note="Here it is.")
    session = await app.service.start(caller=CALLER, key=key(), prompt="say hi", language="py")
    events = await collect(app.service.turn(session, CALLER, "say hi"))

    assert isinstance(events[0], Started) and events[0].number == 1
    assert any(isinstance(e, Progress) for e in events)
    done = events[-1]
    assert isinstance(done, Done)
    assert done.version.number == 1 and done.version.code == "print('hi')"
    assert done.version.note == "Here it is." and done.version.request == "say hi"
    assert done.session.language == "python" and done.session.version_count == 1


async def test_adjust_carries_current_code_and_feedback(app: App, fake: FakeEngine) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    fake.responder = lambda r: next(answers)
    session = await app.service.start(caller=CALLER, key=key(), prompt="write f")
    await collect(app.service.turn(session, CALLER, "write f"))
    events = await collect(app.service.turn(session, CALLER, "return 2 instead"))

    last = fake.requests[-1]
    roles = [m.role for m in last.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "return 1" in last.messages[2].content  # the current version
    assert last.messages[-1].content == "return 2 instead"
    assert (
        "return 2 instead" not in last.messages[0].content
    )  # user text never in the system prompt
    assert last.temperature <= 0.3
    done = events[-1]
    assert isinstance(done, Done) and done.version.number == 2 and "return 2" in done.version.code


async def test_concurrent_adjusts_in_one_session_apply_in_order(app: App, fake: FakeEngine) -> None:
    fake.delay = 0.02
    fake.responder = lambda r: fenced(f"# v for {r.messages[-1].content}")
    session = await app.service.start(caller=CALLER, key=key(), prompt="start")
    await collect(app.service.turn(session, CALLER, "start"))

    feedback = [f"step {i}" for i in range(5)]
    results = await asyncio.gather(
        *(collect(app.service.turn(session, CALLER, f)) for f in feedback)
    )

    versions = await app.store.list_versions(session.id)
    assert [v.request for v in versions] == ["start", *feedback]
    assert [v.number for v in versions] == [1, 2, 3, 4, 5, 6]
    # each turn saw the version made by the one before it
    for i, request in enumerate(fake.requests[1:], start=1):
        assert f"# v for {versions[i - 1].request}" in request.messages[-2].content
    assert any(isinstance(e, Waiting) for events in results for e in events)


async def test_sessions_run_concurrently(app: App, fake: FakeEngine) -> None:
    fake.delay = 0.2
    sessions = [await app.service.start(caller=CALLER, key=key(), prompt=f"p{i}") for i in range(5)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(*(collect(app.service.turn(s, CALLER, "go")) for s in sessions))
    assert loop.time() - began < 0.2 * 5 * 0.6  # overlapped, not one after another


async def test_non_code_answer_makes_no_version(app: App, fake: FakeEngine) -> None:
    fake.responder = lambda r: "Which CSV dialect do you mean?"
    session = await app.service.start(caller=CALLER, key=key(), prompt="parse csv")
    events = await collect(app.service.turn(session, CALLER, "parse csv"))
    assert isinstance(events[-1], NonCode) and "dialect" in events[-1].text
    assert await app.store.list_versions(session.id) == []


@pytest.mark.parametrize("text", ["", "   \n ", "x" * 200_000])
async def test_bad_prompts_never_reach_the_engine(app: App, fake: FakeEngine, text: str) -> None:
    with pytest.raises((EmptyPrompt, PromptTooLong)) as info:
        await app.service.start(caller=CALLER, key=key(), prompt=text)
    assert "limit" in str(info.value) or "what the code should do" in str(info.value)
    session = await app.service.start(caller=CALLER, key=key(), prompt="ok")
    with pytest.raises((EmptyPrompt, PromptTooLong)):
        app.service.turn(session, CALLER, text)  # refused before it takes a place in line
    assert fake.requests == []


async def test_unknown_language_and_model_name_the_choices(app: App) -> None:
    with pytest.raises(UnknownLanguage, match=r"python.*rust"):
        await app.service.start(caller=CALLER, key=key(), prompt="x", language="klingon")
    with pytest.raises(UnknownModelRef, match=r"gpt-6\.1-terra"):
        await app.service.start(caller=CALLER, key=key(), prompt="x", model="nope")


async def test_engine_failure_keeps_request_and_session_usable(app: App, fake: FakeEngine) -> None:
    session = await app.service.start(caller=CALLER, key=key(), prompt="write x")
    fake.fail = EngineUnavailable("The model server answered 500.")
    events = await collect(app.service.turn(session, CALLER, "write x"))
    assert isinstance(events[-1], Failed) and "500" in events[-1].message
    kept = await app.store.latest_failure(session.id)
    assert kept is not None and kept.request == "write x" and events[-1].failure == kept.id

    fake.fail = None
    fake.responder = lambda r: fenced("x = 1")
    events = await collect(app.service.turn(session, CALLER, "write x"))
    assert isinstance(events[-1], Done) and events[-1].version.number == 1
    assert await app.store.latest_failure(session.id) is None


async def test_turn_timeout_is_a_failure(app: App, fake: FakeEngine) -> None:
    app.service.settings = type(app.service.settings)(turn_timeout=0.05)
    fake.delay = 1.0
    session = await app.service.start(caller=CALLER, key=key(), prompt="slow")
    events = await collect(app.service.turn(session, CALLER, "slow"))
    assert isinstance(events[-1], Failed) and "longer than" in events[-1].message


async def test_history_is_trimmed_oldest_first_never_the_current_code(
    app: App, fake: FakeEngine
) -> None:
    fake.context_window = 3000
    counter = itertools.count(1)
    fake.responder = lambda r: fenced(f"# version {next(counter)}\n" + "x = 1\n" * 200)
    session = await app.service.start(caller=CALLER, key=key(), prompt="v1")
    for i in range(1, 6):
        await collect(app.service.turn(session, CALLER, f"change {i}"))
    last: GenerationRequest = fake.requests[-1]
    text = "\n".join(m.content for m in last.messages)
    assert "# version 4" in text  # the current version (made by the 4th turn) is always there
    assert "# version 1" not in text  # the oldest went first
    assert last.messages[-1].content == "change 5"


async def test_ownership_list_show_delete(app: App, fake: FakeEngine) -> None:
    bob = Caller(platform="console", workspace="local", user="bob")
    session = await app.service.start(caller=CALLER, key=key(), prompt="mine")
    await collect(app.service.turn(session, CALLER, "mine"))

    assert [s.id for s in await app.service.list_sessions(CALLER)] == [session.id]
    assert await app.service.list_sessions(bob) == []
    with pytest.raises(NotOwner):
        await app.service.show(session.id, caller=bob)
    with pytest.raises(NotOwner):
        await app.service.delete(session.id, bob)
    # anyone in the thread may give feedback
    events = await collect(app.service.turn(session, bob, "bob's idea"))
    assert isinstance(events[-1], Done) and events[-1].version.number == 2

    _, v1 = await app.service.show(session.id, number=1, caller=CALLER)
    assert v1 is not None and v1.request == "mine"
    await app.service.delete(session.id, CALLER)
    with pytest.raises(SessionNotFound):
        await app.service.show(session.id, caller=CALLER)


async def test_rate_limit_per_user(app: App) -> None:
    app.service._rate = RateLimiter(limit=2, window=60)
    session = await app.service.start(caller=CALLER, key=key(), prompt="a")
    await collect(app.service.turn(session, CALLER, "a"))
    await collect(app.service.turn(session, CALLER, "b"))
    with pytest.raises(RateLimited, match="try again"):
        app.service.turn(session, CALLER, "c")


async def test_replicas_count_a_user_in_one_shared_window(
    app: App, db_target: Path | str, fake: FakeEngine
) -> None:
    """Two processes on one database: a user spreading requests over both gets the limit
    once, not once per replica (each process's own window alone would allow 2 + 2)."""
    other = await build(
        Config(db_path=db_target, model="fake:echo", rate_limit_per_minute=0),
        engine_factory=lambda spec: fake,
    )
    await other.start()
    try:
        services = [app.service, other.service]
        for service in services:
            service._rate = RateLimiter(limit=2, window=60, shared=service.store.rate_hit)
        session = await app.service.start(caller=CALLER, key=key(), prompt="a")
        await collect(app.service.turn(session, CALLER, "a"))
        mine = await other.service.get(session.id, CALLER)
        await collect(other.service.turn(mine, CALLER, "b"))
        events = await collect_refusal(app.service.turn(session, CALLER, "c"))
        assert isinstance(events, RateLimited)
        with pytest.raises(RateLimited):  # a run counts in the same window
            await other.service.check_rate(CALLER)
        _, latest = await other.service.show(session.id, caller=CALLER)
        assert latest is not None and latest.number == 2
    finally:
        await other.aclose()


async def collect_refusal(replies: AsyncIterator[Reply]) -> BaseException | None:
    try:
        await collect(replies)
    except RateLimited as err:
        return err
    return None


async def test_duplicate_deliveries_are_recognised(app: App) -> None:
    assert app.service.first_delivery("Ev1")
    assert not app.service.first_delivery("Ev1")
    assert app.service.first_delivery("Ev2")


async def test_check_refuses_before_anything_is_stored(app: App) -> None:
    from bot.errors import NotAllowed
    from bot.limits import AccessPolicy

    app.service._access = AccessPolicy(users=frozenset({"alice"}))
    mallory = Caller(platform="console", workspace="local", user="mallory")
    with pytest.raises(NotAllowed):
        app.service.check(mallory, prompt="hi")
    checked = app.service.check(CALLER, prompt="  hi  ", language="c++", model=None)
    assert (checked.prompt, checked.language.name, checked.model.ref) == ("hi", "cpp", "fake:echo")
    app.service._rate = RateLimiter(limit=1, window=60)
    app.service.check(CALLER, prompt="x")  # looking does not count
    app.service.check(CALLER, prompt="x")
    assert await app.store.list_sessions() == []


async def test_turns_wait_for_a_loading_model_and_learn_their_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build
    from bot.config import Config
    from bot.values import Loading

    loaded = asyncio.Event()

    class SlowStart(FakeEngine):
        loads_weights = True  # a local model: turns learn their place while it loads

        async def start(self) -> None:
            await loaded.wait()
            await super().start()

    engine = SlowStart(lambda r: fenced("x = 1"))
    app = await build(
        Config(db_path=tmp_path / "ct.db", model="fake:slow", rate_limit_per_minute=0),
        engine_factory=lambda spec: engine,
    )
    try:
        app.engines.get(app.engines.resolve(None))  # loading starts, as at service start
        sessions = [
            await app.service.start(caller=CALLER, key=key(), prompt=f"p{i}") for i in range(2)
        ]
        turns = [asyncio.create_task(collect(app.service.turn(s, CALLER, "go"))) for s in sessions]
        while app.engines.waiting(app.engines.resolve(None)) < 2:
            await asyncio.sleep(0.01)
        loaded.set()
        results = await asyncio.gather(*turns)
        positions = sorted(
            e.position for events in results for e in events if isinstance(e, Loading)
        )
        assert positions == [1, 2]
        assert all(isinstance(events[-1], Done) for events in results)
    finally:
        await app.aclose()


async def test_chat_users_pick_models_from_the_catalog(app: App) -> None:
    slack = Caller(platform="slack", workspace="T1", user="U1", channel="C1")
    with pytest.raises(UnknownModelRef, match=r"not offered here\. Choose one of: gpt-6\.1-terra"):
        app.service.check(slack, prompt="x", model="hf:someone/huge-model")
    assert app.service.check(slack, prompt="x", model="qwen-coder").model.name == "qwen-coder"
    assert app.service.check(slack, prompt="x").model.ref == "fake:echo"  # the configured default
    assert (
        app.service.check(CALLER, prompt="x", model="openai:anything").model.ref
        == "openai:anything"
    )


async def test_arrival_order_holds_even_when_a_consumer_is_slow(app: App, fake: FakeEngine) -> None:
    fake.delay = 0.05
    fake.responder = lambda r: fenced(f"# {r.messages[-1].content}")
    session = await app.service.start(caller=CALLER, key=key(), prompt="a")

    async def consume(text: str, pause: float) -> None:
        async for event in app.service.turn(session, CALLER, text):
            if isinstance(event, Waiting):
                await asyncio.sleep(pause)  # e.g. posting "waiting…" to a slow chat API

    first = asyncio.create_task(consume("a", 0))
    await asyncio.sleep(0)
    second = asyncio.create_task(consume("b", 0.2))
    await asyncio.sleep(0)
    third = asyncio.create_task(consume("c", 0))
    await asyncio.gather(first, second, third)
    assert [v.request for v in await app.store.list_versions(session.id)] == ["a", "b", "c"]


async def test_a_slow_consumer_does_not_use_up_the_model_timeout(
    app: App, fake: FakeEngine
) -> None:
    app.service.settings = type(app.service.settings)(turn_timeout=0.2)
    fake.responder = lambda r: fenced("x = 1\n" * 20)
    session = await app.service.start(caller=CALLER, key=key(), prompt="x")
    events = []
    async for event in app.service.turn(session, CALLER, "x"):
        events.append(event)
        if isinstance(event, Progress):
            await asyncio.sleep(0.05)  # many slow edits: together longer than the timeout
    assert isinstance(events[-1], Done)


async def test_deleting_a_session_mid_turn_ends_it_with_a_message(
    app: App, fake: FakeEngine
) -> None:
    fake.delay = 0.2
    session = await app.service.start(caller=CALLER, key=key(), prompt="x")
    turn = asyncio.create_task(collect(app.service.turn(session, CALLER, "x")))
    await asyncio.sleep(0.05)
    await app.service.delete(session.id, CALLER)
    events = await turn
    assert isinstance(events[-1], Failed) and "deleted" in events[-1].message


async def test_a_default_model_that_cannot_be_created_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build
    from bot.config import Config
    from engines import EngineNotInstalled

    def factory(spec):  # type: ignore[no-untyped-def]
        raise EngineNotInstalled("The local engine is not installed.")

    app = await build(Config(db_path=tmp_path / "x.db", model="qwen-coder"), engine_factory=factory)
    try:
        await app.start()
        (status,) = [s for s in app.engines.status() if s.default]
        assert str(status.readiness) == "failed: The local engine is not installed."
    finally:
        await app.aclose()


async def test_a_reply_after_a_failed_first_answer_keeps_the_first_request(
    app: App, fake: FakeEngine
) -> None:
    session = await app.service.start(caller=CALLER, key=key(), prompt="parse a CSV")
    fake.fail = EngineUnavailable("The model server answered 500.")
    await collect(app.service.turn(session, CALLER, "parse a CSV"))
    fake.fail = None
    fake.responder = lambda r: fenced("import csv")
    events = await collect(app.service.turn(session, CALLER, "with a header row"))
    assert isinstance(events[-1], Done)
    assert events[-1].version.request == "parse a CSV\n\nwith a header row"
    assert await app.store.latest_failure(session.id) is None  # the version made it stale


async def test_code_in_another_language_is_asked_again_then_never_stored(
    app: App, fake: FakeEngine
) -> None:
    answers = iter([fenced("console.log(1)", "javascript"), fenced("print(1)")])
    fake.responder = lambda r: next(answers)
    session = await app.service.start(caller=CALLER, key=key(), prompt="print one", language="py")
    events = await collect(app.service.turn(session, CALLER, "print one"))
    done = events[-1]
    assert isinstance(done, Done) and done.version.code == "print(1)"
    reminder = fake.requests[-1].messages
    assert reminder[-2].role == "assistant" and "console.log" in reminder[-2].content
    assert "this snippet is Python" in reminder[-1].content and reminder[-1].role == "user"

    fake.responder = lambda r: fenced("console.log(2)", "js")
    events = await collect(app.service.turn(session, CALLER, "print two"))
    answer = events[-1]
    assert isinstance(answer, NonCode) and answer.language == "JavaScript"
    assert [v.code for v in await app.store.list_versions(session.id)] == ["print(1)"]
    fake.responder = lambda r: fenced("x = 1", "text")  # a tag that names no language is fine
    assert isinstance((await collect(app.service.turn(session, CALLER, "x")))[-1], Done)


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("reverse a string in Rust", "rust"),
        ("parse a CSV using pandas", "python"),  # pandas names no language: the default
        ("a linked list in C", "c"),
        ("sort it in place", "python"),
        ("fizzbuzz in c++ please", "cpp"),
    ],
)
async def test_a_first_request_may_name_its_language(app: App, prompt: str, language: str) -> None:
    assert app.service.check(CALLER, prompt=prompt).language.name == language
    assert app.service.check(CALLER, prompt=prompt, language="go").language.name == "go"


async def test_requests_carry_the_prediction_a_cache_key_and_a_hashed_user(
    app: App, fake: FakeEngine
) -> None:
    answers = iter([fenced("def f():\n    return 1"), fenced("def f():\n    return 2")])
    fake.responder = lambda r: next(answers, fenced("# tests"))
    session = await app.service.start(caller=CALLER, key=key(), prompt="write f")
    await collect(app.service.turn(session, CALLER, "write f"))
    await collect(app.service.turn(session, CALLER, "return 2"))
    await app.service.complete(session, fake.requests[0].messages)  # a side request (tests)

    first, adjust, side = fake.requests
    assert first.prediction is None  # nothing to repeat yet
    assert adjust.prediction == "def f():\n    return 1"  # the current code, for the server
    assert side.prediction is None
    who = hashlib.sha256(b"console:local:alice").hexdigest()
    for request in (first, adjust, side):
        assert request.cache_key == f"codethread-{session.id}"  # one per session, stable
        assert request.user == who and "alice" not in request.user  # never the raw id
    other = await app.service.start(caller=CALLER, key=key(), prompt="g")
    await collect(app.service.turn(other, CALLER, "g"))
    assert fake.requests[-1].cache_key != first.cache_key and fake.requests[-1].user == who


async def test_diff_and_revert_keep_history_append_only(app: App, fake: FakeEngine) -> None:
    answers = iter([fenced("x = 1"), fenced("x = 2"), fenced("x = 3")])
    fake.responder = lambda r: next(answers)
    session = await app.service.start(caller=CALLER, key=key(), prompt="x")
    for text in ("x", "two", "three"):
        await collect(app.service.turn(session, CALLER, text))

    last = await app.service.diff(session.id, CALLER)  # the last two by default
    assert (last.old.number, last.new.number) == (2, 3)
    assert "-x = 2\n+x = 3" in last.diff and last.diff.startswith(f"--- #{session.id} v2")
    first = await app.service.diff(session.id, CALLER, 1)  # version 1 against the latest
    assert (first.old.number, first.new.number) == (1, 3)
    with pytest.raises(UserError, match="nothing to compare"):
        await app.service.diff(session.id, CALLER, new=1)

    events = await collect(app.service.revert(session, CALLER, 1))
    done = events[-1]
    assert isinstance(done, Done) and done.version.number == 4 and done.version.code == "x = 1"
    assert done.version.request == "Revert to version 1"
    assert [v.code for v in await app.store.list_versions(session.id)] == [
        "x = 1", "x = 2", "x = 3", "x = 1"
    ]  # fmt: skip
    with pytest.raises(UserError, match="already the latest"):
        await collect(app.service.revert(session, CALLER, 4))
    assert len(fake.requests) == 3  # no model was asked to revert
