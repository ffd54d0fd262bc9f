"""/code, /snippets, autocomplete and the buttons, through discord.py's own dispatch."""

from __future__ import annotations

import discord

from bot.app import App
from engines import EngineUnavailable, FakeEngine
from tests.fakes.discord_fakes import ALICE, BOB, CHANNEL_ID, http_error, settle

from ...conftest import fenced
from .conftest import (
    BROKEN_ADD,
    CALLBACK,
    DELETE_ORIGINAL,
    EDIT,
    EPHEMERAL,
    FAILING_TESTS,
    FIXED_ADD,
    FOLLOWUP,
    ORIGINAL,
    PASSING_TESTS,
    SEND,
    TESTS_SYSTEM,
    THREAD,
    V2,
    Bot,
    Connect,
    components,
    fences_balanced,
    layout,
    message_id,
    scripted,
)

# -- /code -----------------------------------------------------------------------------------


async def test_code_defers_opens_a_thread_and_posts_the_version(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("def add(a, b):\n    return a + b", note="Adds.")
    token, thread_id = await bot.code("add two numbers", language="py")

    calls = bot.for_token(token)
    assert calls[0].key == CALLBACK and calls[0].json["type"] == 5  # deferred, thinking
    assert calls[1].key == ORIGINAL and "add two numbers" in calls[1].content
    assert f"<@{ALICE['id']}> asked for a **Python** snippet" in calls[1].content
    original = bot.fake.originals[token]
    thread = bot.fake.calls_to(THREAD)[0]
    assert thread.params == {"channel_id": str(CHANNEL_ID), "message_id": original["id"]}
    assert thread.json["name"] == "Python: add two numbers"

    in_thread = bot.fake.in_channel(thread_id)
    assert in_thread[0].key == SEND and "Writing version 1" in in_thread[0].content
    final = in_thread[-1]
    assert final.key == EDIT
    assert "```python\ndef add(a, b):\n    return a + b\n```" in final.content
    assert "Adds." in final.content and "Version 1 of #1" in final.content
    buttons = ["ct:run:1:1", "ct:input:1:1", "ct:test:1:1"] if app.runs.can_run else []
    assert components(final) == [*buttons, "ct:download:1:1", "ct:delete:1"]

    [session] = await app.store.list_sessions()
    assert session.owner == ALICE["id"] and session.version_count == 1
    assert app.metrics.events.labels(platform="discord", kind="code")._value.get() == 1


async def test_a_version_up_to_4000_characters_is_one_card(bot: Bot, fake: FakeEngine) -> None:
    code = "\n".join(f"def f{i}(x):\n    return x + {i}  # {'pad' * 10}" for i in range(60))
    assert 3000 < len(code) < 3900  # past a plain message's 2,000
    fake.responder = lambda r: fenced(code, "rust")
    _, thread_id = await bot.code("many functions", language="rust")

    final = bot.final(thread_id)
    assert final.files == [] and final.json["flags"] & V2
    assert f"```rust\n{code}\n```" in final.content
    # a container (grey: no run yet) holding the text, then the buttons in a row
    container = final.json["components"][0]
    assert container["type"] == 17 and container["accent_color"] == discord.Colour.greyple().value
    assert layout(final)[:3] == [17, 10, 1]


async def test_a_longer_version_is_sent_as_a_file_component(bot: Bot, fake: FakeEngine) -> None:
    code = "\n".join(f"def f{i}(x):\n    return x + {i}  # {'pad' * 10}" for i in range(80))
    fake.responder = lambda r: fenced(code, "rust")
    _, thread_id = await bot.code("many functions", language="rust")

    final = bot.final(thread_id)
    assert final.files == [("snippet.rs", code)]
    assert len(final.content) <= 4000 and fences_balanced(final.content)
    assert "```rust\ndef f0(x):" in final.content and "more lines in the file" in final.content
    assert layout(final)[:3] == [17, 10, 13]  # the file shown in the card, under the preview
    [file] = [c for c in final.json["components"][0]["components"] if c["type"] == 13]
    assert file["file"]["url"] == "attachment://snippet.rs"


async def test_missing_thread_permission_is_refused_before_anything_is_posted(
    bot: Bot, app: App
) -> None:
    allowed = discord.Permissions(view_channel=True, send_messages=True)
    token = bot.gateway.slash("code", prompt="hello", permissions=str(allowed.value))
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["type"] == 4 and answer.json["data"]["flags"] & EPHEMERAL
    assert "Create Public Threads" in answer.content and "hello" in answer.content
    assert await app.store.list_sessions() == []


async def test_thread_creation_refused_by_discord_is_a_clear_message(bot: Bot, app: App) -> None:
    bot.fake.fail_next(THREAD, http_error(403, "Missing Permissions", 50013))
    token = bot.gateway.slash("code", prompt="print hello")
    await settle()
    keys = [c.key for c in bot.for_token(token)]
    assert keys == [CALLBACK, ORIGINAL, DELETE_ORIGINAL, FOLLOWUP]  # the public post withdrawn
    message = bot.for_token(token)[-1]
    assert message.json["flags"] & EPHEMERAL
    assert "missing a permission here (Missing Permissions)" in message.content
    assert "print hello" in message.content  # the request, to send again
    assert await app.store.list_sessions() == []


async def test_unknown_language_is_refused_ephemerally(bot: Bot) -> None:
    token = bot.gateway.slash("code", prompt="hi", language="klingon")
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["data"]["flags"] & EPHEMERAL
    assert "Unknown language 'klingon'" in answer.content and "python" in answer.content


async def test_result_is_posted_anew_when_its_edit_is_rate_limited(
    bot: Bot, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("y = 2")
    bot.fake.fail_next(EDIT, discord.RateLimited(40.0), times=10)
    _, thread_id = await bot.code("y")
    final = bot.final(thread_id)
    assert final.key == SEND and "y = 2" in final.content  # nothing lost


async def test_engine_failure_is_reported_and_can_be_retried_once(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.fail = EngineUnavailable("The model server answered 500.")
    _, thread_id = await bot.code("write x")
    failure = bot.final(thread_id)
    assert "The model server answered 500." in failure.content and "Retry" in failure.content
    assert components(failure) == ["ct:retry:1:1", "ct:delete:1"]

    fake.fail = None
    fake.responder = lambda r: fenced("x = 1")
    bot.gateway.thread_create(thread_id)
    calls = await bot.click(message_id(failure), "ct:retry:1:1")
    assert [c.key for c in calls] == [CALLBACK] and calls[0].json["type"] == 6
    assert [v.request for v in await app.store.list_versions(1)] == ["write x"]
    assert "x = 1" in bot.final(thread_id).content

    calls = await bot.click(message_id(failure), "ct:retry:1:1")  # a second press
    assert calls[-1].key == FOLLOWUP and calls[-1].json["flags"] & EPHEMERAL
    assert "Nothing to retry" in calls[-1].content
    assert len(await app.store.list_versions(1)) == 1


async def test_retry_works_after_a_restart_also_from_an_old_button(
    bot: Bot, fake: FakeEngine
) -> None:
    fake.fail = EngineUnavailable("The model server answered 500.")
    _, thread_id = await bot.code("write y")
    await bot.restart()

    fake.fail = None
    fake.responder = lambda r: fenced("y = 1")
    earlier = bot.fake.posted(thread_id, "ct:retry:1")  # a Retry button of an older release
    await bot.click(earlier, "ct:retry:1")
    assert [v.request for v in await bot.app.store.list_versions(1)] == ["write y"]
    assert "y = 1" in bot.final(thread_id).content


async def test_autocomplete_offers_languages_and_models(bot: Bot) -> None:
    token = bot.gateway.slash("code", prompt="x", language="ru", focused="language")
    await settle()
    [answer] = bot.for_token(token)
    assert answer.json["type"] == 8
    assert [c["value"] for c in answer.json["data"]["choices"]] == ["rust", "ruby"]

    token = bot.gateway.slash("code", prompt="x", model="gpt", focused="model")
    await settle()
    names = [c["value"] for c in bot.for_token(token)[0].json["data"]["choices"]]
    assert names == ["gpt-6.1-terra", "gpt-6.2-sol"]


# -- /snippets -------------------------------------------------------------------------------


async def test_snippets_are_scoped_to_the_caller(bot: Bot, fake: FakeEngine) -> None:
    fake.responder = lambda r: fenced("print('alice')")
    _, thread_id = await bot.code("alice's snippet")

    token = bot.gateway.slash("snippets", subcommand="list", user=BOB)
    await settle()
    followup = bot.for_token(token)[-1]
    assert followup.key == FOLLOWUP and followup.json["flags"] & EPHEMERAL
    assert "no snippets" in followup.content

    token = bot.gateway.slash("snippets", subcommand="show", user=BOB, id=1)
    await settle()
    assert "belongs to someone else" in bot.for_token(token)[-1].content

    token = bot.gateway.slash("snippets", subcommand="list", user=ALICE)
    await settle()
    listing = bot.for_token(token)[-1]
    assert listing.json["flags"] & EPHEMERAL and "#1" in listing.content
    assert "alice's snippet" in listing.content and f"<#{thread_id}>" in listing.content

    token = bot.gateway.slash("snippets", subcommand="show", user=ALICE, id=1)
    await settle()
    shown = bot.for_token(token)[-1]
    assert shown.json["flags"] & EPHEMERAL and "print('alice')" in shown.content


async def test_snippets_delete_refuses_someone_elses(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("keep me")
    token = bot.gateway.slash("snippets", subcommand="delete", user=BOB, id=1)
    await settle()
    refusal = bot.for_token(token)[-1]
    assert refusal.json["flags"] & EPHEMERAL
    assert "belongs to someone else; only its owner" in refusal.content
    assert await app.store.get_session(1) is not None

    token = bot.gateway.slash("snippets", subcommand="delete", user=ALICE, id=1)
    await settle()
    assert "Deleted snippet #1" in bot.for_token(token)[-1].content
    assert await app.store.get_session(1) is None
    assert bot.fake.threads[thread_id]["thread_metadata"]["archived"] is True


async def test_snippet_ids_autocomplete_from_the_callers_sessions(bot: Bot) -> None:
    await bot.code("alice's snippet")
    for user, expected in ((ALICE, [1]), (BOB, [])):
        token = bot.gateway.slash(
            "snippets", subcommand="show", user=user, focused="id", id="alice"
        )
        await settle()
        choices = bot.for_token(token)[0].json["data"]["choices"]
        assert [c["value"] for c in choices] == expected


# -- buttons ---------------------------------------------------------------------------------


async def test_delete_button_is_for_the_owner_only(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("a snippet")
    message = message_id(bot.final(thread_id))

    refusal = (await bot.click(message, "ct:delete:1", user=BOB))[-1]
    assert refusal.json["flags"] & EPHEMERAL and "only its owner" in refusal.content
    assert await app.store.get_session(1) is not None

    calls = await bot.click(message, "ct:delete:1", user=ALICE)
    assert "Deleted snippet #1" in calls[-1].content
    assert await app.store.get_session(1) is None
    closed = bot.fake.in_channel(thread_id)[-2]
    assert f"was deleted by <@{ALICE['id']}>" in closed.content


async def test_buttons_keep_working_after_a_restart(bot: Bot) -> None:
    _, thread_id = await bot.code("survive a restart")
    message = message_id(bot.final(thread_id))
    await bot.restart()  # a new client and app: no views, no cache from before

    earlier = bot.fake.posted(thread_id, "ct:fix:1")  # under a failed run, say
    calls = await bot.click(earlier, "ct:fix:1")
    assert "Run or test this version first" in calls[-1].content
    calls = await bot.click(message, "ct:delete:1")
    assert "Deleted snippet #1" in calls[-1].content


async def test_test_and_fix_keep_working_after_a_restart(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted(BROKEN_ADD, PASSING_TESTS, then=FIXED_ADD)
    _, thread_id = await bot.code("add")
    version = message_id(bot.final(thread_id))
    await bot.restart()

    result = (await bot.click(version, "ct:test:1:1"))[-1]
    assert "Tests of version 1 of #1 failed" in result.content
    assert components(result) == ["ct:fix:1:1"]
    await bot.restart()

    await bot.click(message_id(result), "ct:fix:1:1")
    assert "Version 2 of #1" in bot.final(thread_id).content
    assert "return a + b" in bot.final(thread_id).content


async def test_run_button_runs_the_version_in_the_sandbox(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced("print(1 + 2)")
    _, thread_id = await bot.code("add")
    final = bot.final(thread_id)
    assert components(final) == [
        "ct:run:1:1", "ct:input:1:1", "ct:test:1:1", "ct:download:1:1", "ct:delete:1"
    ]  # fmt: skip

    calls = await bot.click(message_id(final), "ct:run:1:1", user=BOB)  # anyone in the thread
    assert calls[0].json["type"] == 5  # deferred: public, since a run is worth sharing
    assert calls[-1].key == ORIGINAL
    report = calls[-1].content
    assert report.startswith("✅ Run of version 1 of #1 passed · exit 0 · ")
    assert "**stdout**\n```text\n3\n```" in report
    assert components(calls[-1]) == []  # nothing to fix
    [version] = await app.store.list_versions(1)
    run = await app.store.latest_run(version.id)
    assert run is not None and (run.kind, run.status, run.stdout) == ("run", "ok", "3\n")

    token = bot.gateway.slash("snippets", subcommand="run", id=1, version=1)
    await settle()
    answer = bot.for_token(token)[-1]
    assert answer.json["flags"] & EPHEMERAL and "passed · exit 0" in answer.content


async def test_a_failed_run_offers_fix_which_streams_the_next_version_in_the_thread(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    answers = iter([fenced("print(1 / 0)"), fenced("print(1)")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("divide")
    bot.gateway.thread_create(thread_id)

    result = (await bot.click(message_id(bot.final(thread_id)), "ct:run:1:1"))[-1]
    assert "Run of version 1 of #1 failed · exit 1" in result.content
    assert "ZeroDivisionError" in result.content
    assert components(result) == ["ct:fix:1:1"]

    calls = await bot.click(message_id(result), "ct:fix:1:1", user=BOB)
    assert [c.key for c in calls] == [CALLBACK]  # acknowledged; the version comes in the thread
    assert calls[0].json["type"] == 6
    feedback = fake.requests[-1].messages[-1].content
    assert "it failed when run" in feedback and "ZeroDivisionError" in feedback
    sent = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]
    assert str(sent.json["message_reference"]["message_id"]) == str(message_id(result))
    final = bot.final(thread_id)
    assert "Version 2 of #1" in final.content and "print(1)" in final.content
    assert components(final) == [
        "ct:run:1:2", "ct:input:1:2", "ct:test:1:2", "ct:diff:1:2", "ct:download:1:2",
        "ct:delete:1",
    ]  # fmt: skip
    versions = await app.store.list_versions(1)
    assert [v.request for v in versions] == ["divide", feedback]


async def test_test_button_posts_the_model_written_tests_and_their_result(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted("def add(a, b):\n    return a + b", PASSING_TESTS)
    _, thread_id = await bot.code("add two numbers")

    calls = await bot.click(message_id(bot.final(thread_id)), "ct:test:1:1", user=BOB)
    assert calls[0].key == CALLBACK and calls[0].json["type"] == 5  # deferred at once
    assert "Writing unit tests for version 1" in calls[1].content
    asked = fake.requests[-1].messages
    assert asked[0].content.startswith(TESTS_SYSTEM) and "return a + b" in asked[-1].content
    result = calls[-1]
    assert result.key == ORIGINAL and len(result.content) <= 4000
    assert result.content.startswith("✅ Tests of version 1 of #1 passed · exit 0")
    assert "test_adds (test_snippet.AddTest" in result.content and "OK" in result.content
    assert f"**The tests**\n```python\n{PASSING_TESTS}\n```" in result.content  # short: inline
    assert result.files == [] and components(result) == []
    assert fences_balanced(result.content)


async def test_failing_tests_then_fix_makes_the_next_version_from_the_failure(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted(BROKEN_ADD, FAILING_TESTS, then=FIXED_ADD)
    _, thread_id = await bot.code("add two numbers")
    bot.gateway.thread_create(thread_id)

    result = (await bot.click(message_id(bot.final(thread_id)), "ct:test:1:1"))[-1]
    assert result.content.startswith("❌ Tests of version 1 of #1 failed · exit 1")
    assert "AssertionError: -1 != 3" in result.content
    assert result.files == [("test_snippet.py", FAILING_TESTS)]  # too long to show inline
    assert "`test_snippet.py`, attached." in result.content
    assert len(result.content) <= 4000 and fences_balanced(result.content)
    assert components(result) == ["ct:fix:1:1"]

    await bot.click(message_id(result), "ct:fix:1:1")
    fix = fake.requests[-1].messages
    assert not fix[0].content.startswith(TESTS_SYSTEM)
    assert "return a - b" in fix[-2].content  # the current version, then the feedback
    feedback = fix[-1].content
    assert "its unit tests failed" in feedback and "AssertionError: -1 != 3" in feedback
    assert "def test_adds" in feedback  # the tests that failed come along
    final = bot.final(thread_id)
    assert "Version 2 of #1" in final.content and "return a + b" in final.content

    result = (await bot.click(message_id(final), "ct:test:1:2"))[-1]
    assert result.content.startswith("✅ Tests of version 2 of #1 passed")
    assert components(result) == []


async def test_fix_with_nothing_to_fix_says_so_privately(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("print('fine')")
    _, thread_id = await bot.code("be fine")
    version = bot.final(thread_id)
    earlier = bot.fake.posted(thread_id, "ct:fix:1")  # a failed run's result from before
    requests = len(fake.requests)

    calls = await bot.click(earlier, "ct:fix:1")
    assert calls[-1].key == FOLLOWUP and calls[-1].json["flags"] & EPHEMERAL
    assert "Run or test this version first" in calls[-1].content

    if app.runs.can_run:
        await bot.click(message_id(version), "ct:run:1:1")
        calls = await bot.click(earlier, "ct:fix:1")
        assert calls[-1].json["flags"] & EPHEMERAL
        assert "passed; there is nothing to fix" in calls[-1].content
    assert len(fake.requests) == requests  # the model was not asked
    assert len(await app.store.list_versions(1)) == 1
    assert bot.final(thread_id) == version  # nothing new in the thread


async def test_fix_and_test_of_an_older_version_are_refused(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(f"print({len(fake.requests)})")
    _, thread_id = await bot.code("count")
    first = message_id(bot.final(thread_id))
    bot.gateway.thread_create(thread_id)
    bot.gateway.message(thread_id, "again")
    await settle()
    failed_run = bot.fake.posted(thread_id, "ct:fix:1:1")  # a failed run of version 1
    for message, button in ((first, "ct:test:1:1"), (failed_run, "ct:fix:1:1")):
        calls = await bot.click(message, button)
        assert calls[-1].json["flags"] & EPHEMERAL
        assert "use the buttons of version 2" in calls[-1].content


async def test_test_is_refused_for_other_languages(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced('fn main() { println!("hi"); }', "rust")
    _, thread_id = await bot.code("say hi", language="rust")
    final = bot.final(thread_id)
    assert components(final) == ["ct:run:1:1", "ct:input:1:1", "ct:download:1:1", "ct:delete:1"]
    calls = await bot.click(bot.fake.posted(thread_id, "ct:test:1:1"), "ct:test:1:1")
    # refused before anything is shown: the "thinking…" post withdrawn, the refusal private
    assert [c.key for c in calls] == [CALLBACK, DELETE_ORIGINAL, FOLLOWUP]
    assert "Tests can be written for JavaScript and Python snippets" in calls[-1].content


async def test_without_a_sandbox_there_is_no_run_or_test(
    connected: Connect, fake: FakeEngine
) -> None:
    bot = await connected(run_snippets=False)
    fake.responder = lambda r: fenced("print(1)")
    _, thread_id = await bot.code("one")
    assert components(bot.final(thread_id)) == ["ct:download:1:1", "ct:delete:1"]
    earlier = bot.fake.posted(thread_id, "ct:run:1:1", "ct:test:1:1")  # before, with one
    for button in ("ct:run:1:1", "ct:test:1:1"):
        calls = await bot.click(earlier, button)
        assert calls[-1].json["flags"] & EPHEMERAL
        assert "Running snippets is turned off here." in calls[-1].content
