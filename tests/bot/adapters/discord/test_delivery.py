"""Components V2 everywhere, and delivery that is not lost: expired or refused interaction
tokens, long rate limits, backtick runs, masked links, pasted files, whose rights, whose
thread."""

from __future__ import annotations

import asyncio
import datetime
import re

import discord

from bot.app import App
from engines import FakeEngine
from tests.fakes.discord_fakes import ALICE, CHANNEL_ID, Call, http_error, settle

from ...conftest import fenced
from .conftest import (
    CALLBACK,
    EDIT,
    EPHEMERAL,
    FOLLOWUP,
    ORIGINAL,
    PASSING_TESTS,
    SEND,
    THREAD,
    V2,
    Bot,
    components,
    message_id,
    scripted,
)

ZWSP = "\u200b"
DELETE = "DELETE /channels/{channel_id}/messages/{message_id}"
TEXT = "text/plain; charset=utf-8"
LATE = datetime.timedelta(minutes=14, seconds=30)  # within the token's last minute


def safe(content: str) -> bool:
    """Only fence lines hold three backticks in a row, and they pair up."""
    runs = [line for line in content.splitlines() if "```" in line]
    return len(runs) % 2 == 0 and all(re.fullmatch(r"```[\w+\-.#]*", line) for line in runs)


def sent(bot: Bot, thread_id: int) -> Call:
    """The last message sent (not edited or deleted) in a thread."""
    return [c for c in bot.fake.in_channel(thread_id) if c.key == SEND][-1]


def four_fenced(code: str) -> str:
    """A model's answer whose code holds a ``` (so its fence is four backticks)."""
    return f"````python\n{code}\n````\n"


# -- Components V2 ---------------------------------------------------------------------------


async def test_every_message_is_components_v2_without_content(bot: Bot) -> None:
    token, thread_id = await bot.code("everything v2")
    request = next(c for c in bot.for_token(token) if c.key == ORIGINAL)
    assert request.json["flags"] & V2  # the deferred "thinking…" is upgraded by the edit
    messages = [c for c in bot.fake.in_channel(thread_id) if c.key in (SEND, EDIT)]
    assert "Writing version 1" in messages[0].content  # the stream is V2 from its first post
    for call in [request, *messages]:
        assert call.json["flags"] & V2 and not call.json.get("content")

    token = bot.gateway.slash("snippets", subcommand="list")
    await settle()
    listing = bot.for_token(token)[-1]
    assert listing.json["flags"] == EPHEMERAL | V2 and "everything v2" in listing.content
    assert listing.json["components"][0]["type"] == 10  # a notice: bare text, no container


async def test_a_run_card_shows_its_outcome_in_the_accent(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    answers = iter([fenced("print(1)"), fenced("print(1 / 0)")])
    fake.responder = lambda r: next(answers)
    _, thread_id = await bot.code("one")
    bot.gateway.thread_create(thread_id)
    passed = (await bot.click(message_id(bot.final(thread_id)), "ct:run:1:1"))[-1]
    assert passed.json["components"][0]["accent_color"] == discord.Colour.green().value

    bot.gateway.message(thread_id, "divide by zero")
    await settle()
    failed = (await bot.click(message_id(bot.final(thread_id)), "ct:run:1:2"))[-1]
    assert failed.json["components"][0]["accent_color"] == discord.Colour.red().value
    assert components(failed) == ["ct:fix:1:2"]  # the button inside the card


# -- backtick runs and masked links ------------------------------------------------------------


async def test_code_holding_backtick_runs_stays_in_its_block(bot: Bot, fake: FakeEngine) -> None:
    code = 'FENCE = "```"\nprint(f"{FENCE}\\n# Heading\\n✅ passed")'
    fake.responder = lambda r: four_fenced(code)
    _, thread_id = await bot.code("print a fence")
    final = bot.final(thread_id).content
    assert safe(final) and f'FENCE = "``{ZWSP}`"' in final
    assert [v.code for v in await bot.app.store.list_versions(1)] == [code]  # stored as written
    download = (await bot.click(message_id(bot.final(thread_id)), "ct:download:1:1"))[-1]
    assert download.files == [("snippet.py", code)]  # the exact code, a click away


async def test_run_output_holding_a_fence_cannot_fake_a_result(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: four_fenced(
        'print("```\\n# ✅ passed\\n[ok](https://evil.example)")'
    )
    _, thread_id = await bot.code("print a fence")
    result = (await bot.click(message_id(bot.final(thread_id)), "ct:run:1:1"))[-1]
    assert safe(result.content)
    assert f"```text\n``{ZWSP}`\n# ✅ passed\n[ok](https://evil.example)\n```" in result.content


async def test_masked_links_in_the_models_note_are_escaped(bot: Bot, fake: FakeEngine) -> None:
    note = "Docs: [the manual](https://evil.example/login)"
    fake.responder = lambda r: fenced("x = 1", note=note)
    _, thread_id = await bot.code("x")
    final = bot.final(thread_id).content
    assert "Docs: \\[the manual](https://evil.example/login)" in final
    assert "[the manual]" not in final.replace("\\[the manual]", "")


# -- interaction tokens ------------------------------------------------------------------------


async def test_a_result_past_the_tokens_life_is_posted_in_the_thread(bot: Bot) -> None:
    _, thread_id = await bot.code("late")
    version = message_id(bot.final(thread_id))
    token = bot.gateway.click(version, "ct:download:1:1", age=LATE)
    await settle()

    [callback] = bot.for_token(token)  # the token is used for the acknowledgement only
    thinking = callback.response["interaction"]["response_message_id"]
    result = sent(bot, thread_id)
    assert result.files == [("snippet.py", "late")]
    assert str(result.json["message_reference"]["message_id"]) == str(version)
    [deleted] = bot.fake.calls_to(DELETE)  # the "thinking…" post does not dangle
    assert deleted.params == {"channel_id": str(thread_id), "message_id": thinking}
    assert int(thinking) not in bot.fake.messages


async def test_a_result_the_token_is_refused_for_is_posted_in_the_thread(bot: Bot) -> None:
    _, thread_id = await bot.code("refused")
    bot.fake.fail_next(ORIGINAL, http_error(401, "Invalid Webhook Token", 50027))
    calls = await bot.click(message_id(bot.final(thread_id)), "ct:download:1:1")
    assert [c.key for c in calls] == [CALLBACK, ORIGINAL]
    assert sent(bot, thread_id).files == [("snippet.py", "refused")]
    assert len(bot.fake.calls_to(DELETE)) == 1


async def test_a_test_whose_token_expires_while_it_runs_is_not_lost(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = scripted("def add(a, b):\n    return a + b", PASSING_TESTS)
    _, thread_id = await bot.code("add")
    fake.delay = 0.3  # the tests are being written
    token = bot.gateway.click(message_id(bot.final(thread_id)), "ct:test:1:1")
    while not (filled := [c for c in bot.for_token(token) if c.key == ORIGINAL]):
        await asyncio.sleep(0.01)  # until "Writing unit tests …" fills the response
    status = filled[0]
    bot.fake.fail_next(ORIGINAL, http_error(401, "Invalid Webhook Token", 50027))
    await settle()

    assert [c.key for c in bot.for_token(token)] == [CALLBACK, ORIGINAL, ORIGINAL]
    assert "Tests of version 1 of #1 passed" in sent(bot, thread_id).content
    [deleted] = bot.fake.calls_to(DELETE)  # the status the response became
    assert deleted.params["message_id"] == str(message_id(status))


async def test_a_run_that_ends_after_the_token_expired_is_posted_in_the_thread(
    bot: Bot, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced("print(3)")
    _, thread_id = await bot.code("three")
    token = bot.gateway.click(message_id(bot.final(thread_id)), "ct:run:1:1", age=LATE)
    await settle()
    assert [c.key for c in bot.for_token(token)] == [CALLBACK]
    assert "Run of version 1 of #1 passed" in sent(bot, thread_id).content
    assert len(bot.fake.calls_to(DELETE)) == 1


# -- rate limits -------------------------------------------------------------------------------


async def test_a_result_refused_by_a_long_rate_limit_is_sent_again(
    bot: Bot, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced("z = 3")
    fake.delay = 0.2
    bot.gateway.slash("code", prompt="z")
    await bot.fake.first_call(SEND)  # "Writing version 1 …" is up
    bot.fake.fail_next(EDIT, discord.RateLimited(40.0), times=20)  # longer than the 30 s cap
    bot.fake.fail_next(SEND, discord.RateLimited(0.1))
    await settle()
    thread_id = int(bot.fake.calls_to(THREAD)[0].params["message_id"])
    sends = [c for c in bot.fake.in_channel(thread_id) if c.key == SEND]
    assert len(sends) == 3  # "Writing …", the result refused, the result again
    assert sends[2].at - sends[1].at >= 0.1 and "z = 3" in sends[2].content


# -- pasted files --------------------------------------------------------------------------------


async def test_a_reply_made_only_of_a_pasted_file_is_a_turn(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    pasted = "make it handle these cases:\n" + "\n".join(f"- case {i}" for i in range(400))
    bot.gateway.message(thread_id, "", files=[("message.txt", TEXT, pasted)])
    await settle()
    assert [v.request for v in await app.store.list_versions(1)] == ["start", pasted]
    [read] = [c for c in bot.fake.calls if c.via == "cdn"]
    assert read.path.endswith("/message.txt")
    assert "Version 2 of #1" in bot.final(thread_id).content


async def test_pastes_and_files_in_an_uncached_thread_keep_their_order(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("start")  # no THREAD_CREATE: looked up first
    bot.gateway.message(thread_id, "", files=[("message.txt", TEXT, "first paste")])
    bot.gateway.message(thread_id, "", files=[("cat.png", "image/png", b"\x89PNG\r\n")])
    bot.gateway.message(thread_id, "and then this")
    await settle()
    requests = ["start", "first paste", "and then this"]
    assert [v.request for v in await app.store.list_versions(1)] == requests
    assert [f.name for f in await app.store.list_files(1)] == ["cat.png"]  # an image: a file
    notice = next(c for c in bot.fake.in_channel(thread_id) if "Attached" in c.content)
    assert "📎 Attached `cat.png` (6 B) to #1" in notice.content

    huge = "x" * (app.config.max_prompt_chars * 4 + 1)  # a paste too long to be a request
    bot.gateway.message(thread_id, "", files=[("message.txt", TEXT, huge)])
    await settle()
    assert "the limit is 8,000" in bot.final(thread_id).content  # refused, and said so
    assert len([c for c in bot.fake.calls if c.via == "cdn"]) == 3
    assert len(await app.store.list_versions(1)) == 3


async def test_a_paste_in_a_thread_without_a_session_is_not_read(bot: Bot) -> None:
    _, thread_id = await bot.code("start")
    unused = bot.fake.next_id()  # a thread the bot opened that holds no session
    bot.fake.threads[unused] = {**bot.fake.threads[thread_id], "id": str(unused)}
    bot.gateway.thread_create(unused)
    before = len(bot.fake.calls)
    bot.gateway.message(unused, "", files=[("message.txt", TEXT, "hello")])
    await settle()
    assert bot.fake.calls[before:] == []


# -- whose rights, whose thread --------------------------------------------------------------


async def test_a_member_who_may_not_open_threads_is_refused_first(bot: Bot, app: App) -> None:
    member = discord.Permissions(
        view_channel=True, send_messages=True, use_application_commands=True
    )
    token = bot.gateway.slash("code", prompt="hello", member_permissions=str(member.value))
    await settle()
    [answer] = bot.for_token(token)  # the refusal is the acknowledgement: nothing public
    assert answer.json["type"] == 4 and answer.json["data"]["flags"] & EPHEMERAL
    assert "You need the Create Public Threads" in answer.content and "hello" in answer.content
    assert bot.fake.calls_to(THREAD) == [] and await app.store.list_sessions() == []


async def test_a_member_who_may_not_post_in_threads_cannot_make_the_bot_post(bot: Bot) -> None:
    _, thread_id = await bot.code("quiet")
    member = discord.Permissions.all()
    member.send_messages_in_threads = False
    failed = bot.fake.posted(thread_id, "ct:retry:1:1")  # a failure's Retry, say
    before = len(bot.fake.in_channel(thread_id))
    for message, button in ((message_id(bot.final(thread_id)), "ct:download:1:1"),
                            (failed, "ct:retry:1:1")):  # fmt: skip
        token = bot.gateway.click(message, button, member_permissions=str(member.value))
        await settle()
        [answer] = bot.for_token(token)
        assert answer.json["data"]["flags"] & EPHEMERAL
        assert "You can't send messages in threads here" in answer.content
    assert len(bot.fake.in_channel(thread_id)) == before


async def test_a_button_acts_only_on_the_session_of_its_thread(bot: Bot, fake: FakeEngine) -> None:
    _, first = await bot.code("first")
    _, second = await bot.code("second")
    stray = bot.fake.posted(second, "ct:download:1:1", "ct:delete:1")  # #1's, in #2's thread
    in_channel = bot.fake.posted(CHANNEL_ID, "ct:download:1:1")  # outside any thread
    for message, button in ((stray, "ct:download:1:1"), (stray, "ct:delete:1")):
        [answer] = await bot.click(message, button, user=ALICE)
        assert answer.key == CALLBACK and answer.json["data"]["flags"] & EPHEMERAL
        assert "belongs to a snippet in another thread" in answer.content
    [answer] = await bot.click(in_channel, "ct:download:1:1")
    assert "another thread" in answer.content
    assert await bot.app.store.get_session(1) is not None
    calls = await bot.click(message_id(bot.final(first)), "ct:download:1:1")  # at home: fine
    assert calls[-1].files == [("snippet.py", "first")]


async def test_a_private_answer_is_never_posted_publicly_instead(bot: Bot) -> None:
    await bot.code("mine")
    sends = len(bot.fake.calls_to(SEND))
    bot.fake.fail_next(FOLLOWUP, http_error(401, "Invalid Webhook Token", 50027))
    token = bot.gateway.slash("snippets", subcommand="list")
    await settle()
    keys = [c.key for c in bot.for_token(token)]
    assert keys[0] == CALLBACK and set(keys[1:]) == {FOLLOWUP}  # refused: logged
    assert len(bot.fake.calls_to(SEND)) == sends
