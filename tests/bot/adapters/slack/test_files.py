"""Files on Slack: posted in a session's thread (downloaded with the bot token, attached,
refused by name), made by a run (uploaded into the thread, pictures inline), the Run with
input… form, and ``/snippets run ID … / files ID``. Every fake Slack here checks what Slack
would refuse (``slack.invalid`` stays empty)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.files import MAX_FILE_BYTES
from engines import FakeEngine, GenerationRequest
from tests.bot.adapters.slack.harness import (
    TOKEN,
    Bot,
    config,
    direct,
    reply,
    running,
    shared,
)
from tests.bot.conftest import fenced
from tests.fakes.slack_api import FakeSlack, Posted

CSV = b"name,amount\napples,3\npears,4\nplums,5\n"
SUM_CSV = """\
import csv

with open("data.csv") as f:
    print(sum(int(row["amount"]) for row in csv.DictReader(f)))
"""
#: a 1x1 PNG, written by the snippet byte for byte
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201"
    "d3e6a6d40000000049454e44ae426082"
)
PLOT = f"""\
with open("plot.png", "wb") as f:
    f.write(bytes.fromhex("{PNG.hex()}"))
print("drawn")
"""
ECHO = """\
import sys

total = int(input()) + int(input())
print(total, sys.argv[1:])
"""


def answers(engine: FakeEngine, *codes: str) -> None:
    """Versions answer ``codes`` in turn."""
    left = iter(codes)
    engine.responder = lambda r: fenced(next(left))


def told(request: GenerationRequest) -> str:
    """What the model was told in the turn's last message."""
    return request.messages[-1].content


async def ran(bot: Bot, parent: Posted, version: Posted, **click: str) -> Posted:
    """Press Run on ``version``; the run's card."""
    await bot.click("codethread_run", version, **click)
    return next(m for m in reversed(bot.slack.thread("C1", parent.ts)) if "Run of" in m.text)


# -- files in -----------------------------------------------------------------------------------


async def test_a_csv_posted_with_a_request_is_attached_and_the_next_run_reads_it(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    answers(engine, "print('hi')", SUM_CSV)
    parent = await bot.start_session("say hi")

    csv = bot.slack.add_file("data.csv", CSV)
    assert await bot.event(shared(parent, [csv], "sum the amounts in this file")) == 200
    await bot.settle()
    assert bot.slack.downloads == [(csv["id"], TOKEN)]  # with the bot token, once
    _, notice, v2 = bot.slack.thread("C1", parent.ts)
    assert "Attached `data.csv` (37 B) to #1" in notice.body()
    assert "Version 2 of #1" in v2.body()
    asked = told(engine.requests[-1])
    assert "sum the amounts in this file" in asked and "`data.csv` (37 B)" in asked
    assert "name,amount" in asked  # its first lines, for the model

    result = await ran(bot, parent, v2)
    assert result.text == "Run of version 2 of #1 passed"
    assert "```text\n12\n```" in result.body()


async def test_a_message_of_files_only_attaches_them_and_makes_no_version(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    answers(engine, SUM_CSV)
    parent = await bot.start_session("sum data.csv")
    [version] = bot.slack.thread("C1", parent.ts)

    assert await bot.event(shared(parent, [bot.slack.add_file("data.csv", CSV)])) == 200
    await bot.settle()
    assert len(engine.requests) == 1  # nothing was asked
    _, notice = bot.slack.thread("C1", parent.ts)
    assert "Attached `data.csv`" in notice.body() and notice.action_ids() == []
    session = await bot.app.service.get(1)
    assert session is not None and session.version_count == 1

    result = await ran(bot, parent, version, user="U2")  # the next run finds it
    assert "```text\n12\n```" in result.body()


async def test_a_file_over_the_limit_is_refused_by_name_without_a_download(
    bot: Bot, engine: FakeEngine
) -> None:
    parent = await bot.start_session()
    big = bot.slack.add_file("huge.csv", b"x,y\n1,2\n", size=MAX_FILE_BYTES + 1)
    small = bot.slack.add_file("small.csv", CSV)
    assert await bot.event(shared(parent, [big, small])) == 200
    await bot.settle()

    assert [file_id for file_id, _ in bot.slack.downloads] == [small["id"]]
    _, notice = bot.slack.thread("C1", parent.ts)
    assert "Attached `small.csv`" in notice.body()
    assert "`huge.csv` was not attached: over 2.0 MB" in notice.body()
    assert len(engine.requests) == 1


async def test_a_file_slack_describes_later_is_looked_up_first(bot: Bot) -> None:
    parent = await bot.start_session()
    csv = bot.slack.add_file("data.csv", CSV)
    partial = {"id": csv["id"], "mode": "hosted", "file_access": "check_file_info"}
    assert await bot.event(shared(parent, [partial])) == 200
    await bot.settle()
    [info] = bot.slack.calls_to("files.info")
    assert info.params["file"] == csv["id"] and info.token == TOKEN
    _, notice = bot.slack.thread("C1", parent.ts)
    assert "Attached `data.csv`" in notice.body()


async def test_a_message_after_a_file_waits_for_its_download(bot: Bot, engine: FakeEngine) -> None:
    parent = await bot.start_session()
    bot.slack.download_latency = 0.3
    csv = bot.slack.add_file("data.csv", CSV)
    assert await bot.event(shared(parent, [csv])) == 200
    assert await bot.event(reply(parent, "now sum it")) == 200  # sent while it downloads
    await bot.settle()

    _, notice, v2 = bot.slack.thread("C1", parent.ts)
    assert "Attached `data.csv`" in notice.body() and "Version 2 of #1" in v2.body()
    assert "`data.csv`" in told(engine.requests[-1])  # the turn after it saw the file


async def test_files_in_a_thread_that_is_no_session_are_left_alone(bot: Bot) -> None:
    csv = bot.slack.add_file("data.csv", CSV)
    outside = {**shared(Posted("C1", "1.1", "", [], None), [csv]), "thread_ts": "1.1"}
    assert await bot.event(outside) == 200
    await bot.settle()
    assert bot.slack.downloads == []
    assert {c.method for c in bot.slack.calls} == {"auth.test"}  # the start's, bolt's; no post


async def test_a_file_in_a_direct_message_thread_joins_its_session(
    bot: Bot, engine: FakeEngine
) -> None:
    assert await bot.event(direct("python say hi", thread="1.5")) == 200
    await bot.settle()
    csv = bot.slack.add_file("data.csv", CSV)
    message = {**direct("", thread="1.5"), "subtype": "file_share", "files": [csv]}
    assert await bot.event(message) == 200
    await bot.settle()
    _, notice = bot.slack.thread("D1", "1.5")
    assert "Attached `data.csv` (37 B) to #1" in notice.body()
    assert len(engine.requests) == 1


async def test_a_file_slack_will_not_hand_over_is_told_to_the_poster(
    tmp_path: Path, engine: FakeEngine
) -> None:
    async with FakeSlack(bot_token="xoxb-another-app") as slack:  # files:read not granted
        async with running(config(tmp_path, slack), slack, engine) as bot:
            parent = await bot.start_session()
            csv = slack.add_file("data.csv", CSV)
            assert await bot.event(shared(parent, [csv], "use it")) == 200
            await bot.settle()
        assert [name for name, _ in slack.invalid] == ["files.download"]  # the sign-in page
        slack.invalid.clear()
    [answer] = slack.ephemerals
    assert answer["user"] == "U1" and "missing a permission here (files:read)" in answer["text"]
    _, v2 = slack.thread("C1", parent.ts)  # the request went on without the file
    assert "Version 2 of #1" in v2.body()


# -- files out ----------------------------------------------------------------------------------


async def test_a_picture_a_run_makes_is_uploaded_into_the_thread(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    answers(engine, PLOT)
    parent = await bot.start_session("draw a plot")
    [version] = bot.slack.thread("C1", parent.ts)

    await bot.click("codethread_run", version)
    _, result, pictures = bot.slack.thread("C1", parent.ts)
    assert result.text == "Run of version 1 of #1 passed" and "Made `plot.png`" in result.body()
    [shown] = pictures.files
    assert shown["name"] == "plot.png" and shown["mimetype"] == "image/png"
    made = bot.slack.files[shown["id"]]
    assert made.data == PNG and made.channel == "C1" and made.thread_ts == parent.ts
    assert made.alt_txt and "plot.png" in made.alt_txt and made.snippet_type is None
    [upload] = bot.slack.calls_to("files.completeUploadExternal")
    assert upload.params["thread_ts"] == parent.ts


# -- Run with input… ------------------------------------------------------------------------------


async def open_run_form(bot: Bot, engine: FakeEngine) -> tuple[Posted, dict[str, object]]:
    answers(engine, ECHO)
    parent = await bot.start_session("add two numbers from stdin")
    [version] = bot.slack.thread("C1", parent.ts)
    await bot.click("codethread_input", version, user="U2")  # anyone in the thread
    [opened] = bot.slack.calls_to("views.open")
    assert opened.params["trigger_id"].startswith("trigger-click-")
    [view] = bot.slack.views
    return parent, view


async def test_run_with_input_opens_a_form_and_runs_with_what_was_typed(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    parent, view = await open_run_form(bot, engine)
    fields = {b["block_id"]: b for b in view["blocks"]}  # type: ignore[attr-defined]
    assert set(fields) == {"stdin", "args"}
    assert fields["stdin"]["element"]["multiline"] and fields["stdin"]["optional"]
    assert not fields["args"]["element"]["multiline"] and fields["args"]["optional"]
    assert view["title"]["text"] == "Run with input"  # type: ignore[index]
    assert len(bot.slack.thread("C1", parent.ts)) == 1  # nothing runs before the submit

    answer = await bot.submit(view, {"stdin": "3\n4\n", "args": 'a "b c"'}, user="U2")
    assert answer == {}  # the form closes
    await bot.settle()
    _, result = bot.slack.thread("C1", parent.ts)
    assert result.text == "Run of version 1 of #1 passed"
    assert "```text\n7 ['a', 'b c']\n```" in result.body()
    assert "arguments `a 'b c'`" in result.body() and "on stdin" in result.body()
    assert bot.count("action_input") == 1


async def test_arguments_that_do_not_split_keep_the_form_open(bot: Bot, engine: FakeEngine) -> None:
    bot.needs_sandbox()
    parent, view = await open_run_form(bot, engine)
    answer = await bot.submit(view, {"stdin": "1\n2\n", "args": 'a "b'})
    assert answer["response_action"] == "errors"
    assert "could not be read" in answer["errors"]["args"]
    await bot.settle()
    assert len(bot.slack.thread("C1", parent.ts)) == 1 and bot.slack.ephemerals == []


# -- /snippets run and files ----------------------------------------------------------------------


async def test_snippets_run_with_arguments_and_stdin_and_snippets_files(
    bot: Bot, engine: FakeEngine
) -> None:
    bot.needs_sandbox()
    answers(engine, "import sys\nprint(sys.argv[1:], input())")
    parent = await bot.start_session("print the arguments")
    await bot.event(shared(parent, [bot.slack.add_file("data.csv", CSV)]))
    await bot.settle()
    bot.slack.responses.clear()

    for text in ("run 1 --stdin 'a &lt;b&gt;' -- x y", "files 1", "run 1 --bogus", "files"):
        status, _, _ = await bot.command("/snippets", text)
        assert status == 200
        await bot.settle()
    result, listing, usage, number = (body for _, body in bot.slack.responses)
    assert all(r["response_type"] == "ephemeral" for r in (result, listing, usage, number))
    assert result["text"] == "Run of version 1 of #1 passed"
    assert "['x', 'y'] a <b>" in json.dumps(result["blocks"], ensure_ascii=False).replace(
        "&lt;", "<"
    ).replace("&gt;", ">")
    text = json.dumps(listing["blocks"])
    assert "Files of #1" in text and "data.csv" in text
    assert "/snippets run ID [N] [--stdin TEXT] [-- ARG" in usage["text"]
    assert "Give a snippet number" in number["text"]
    assert len(bot.slack.thread("C1", parent.ts)) == 2  # the version and the notice: no post


async def test_snippets_files_of_a_session_without_files(bot: Bot) -> None:
    await bot.start_session()
    await bot.command("/snippets", "files #1")
    await bot.settle()
    [(_, answer)] = bot.slack.responses
    assert answer["response_type"] == "ephemeral" and answer["text"] == "No files in #1"
    assert "Snippet #1 has no files" in json.dumps(answer["blocks"])
