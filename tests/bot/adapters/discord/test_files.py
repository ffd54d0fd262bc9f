"""Files in and out of a session thread: attachments become the session's input files, the
files a run makes come back with its card (pictures in a media gallery), ``/snippets files``."""

from __future__ import annotations

import struct
import zlib

import discord

from bot.app import App
from bot.files import MAX_FILE_BYTES
from engines import FakeEngine
from tests.fakes.discord_fakes import BOB, gallery, settle

from ...conftest import fenced
from .conftest import EPHEMERAL, FOLLOWUP, ORIGINAL, SEND, Bot, components, layout, message_id

CSV = "text/csv"
SUM_CSV = """\
import csv

with open("data.csv") as f:
    print(sum(int(row["amount"]) for row in csv.DictReader(f)))"""
DATA = "item,amount\npen,3\nbook,12\nlamp,27\n"


def png() -> bytes:
    """A real 1x1 PNG (red)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def downloads(bot: Bot) -> list[str]:
    """The attachment URLs the bot downloaded, in order."""
    return [c.path for c in bot.fake.calls if c.via == "cdn"]


# -- files in --------------------------------------------------------------------------------


async def test_a_csv_posted_in_the_thread_is_attached_and_the_next_run_reads_it(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    fake.responder = lambda r: fenced(SUM_CSV)
    _, thread_id = await bot.code("sum the amount column of data.csv")
    bot.gateway.thread_create(thread_id)
    version = message_id(bot.final(thread_id))
    requests = len(fake.requests)

    posted = bot.gateway.message(thread_id, "", files=[("data.csv", CSV, DATA)])
    await settle()
    [url] = downloads(bot)
    assert url == posted["attachments"][0]["url"] and url.startswith("http://127.0.0.1:")
    notice = bot.final(thread_id)  # a plain notice in the thread, answering the message
    assert (
        notice.key == SEND and str(notice.json["message_reference"]["message_id"]) == posted["id"]
    )
    assert "📎 Attached `data.csv` (34 B) to #1" in notice.content
    assert len(fake.requests) == requests  # files only: nothing asked of the model
    [stored] = await app.store.list_files(1)
    assert (stored.name, stored.data) == ("data.csv", DATA.encode())

    calls = await bot.click(version, "ct:run:1:1", user=BOB)
    assert calls[-1].key == ORIGINAL
    assert "passed · exit 0" in calls[-1].content
    assert "**stdout**\n```text\n42\n```" in calls[-1].content


async def test_text_with_a_file_attaches_it_first_and_the_model_sees_it(
    bot: Bot, app: App, fake: FakeEngine
) -> None:
    fake.responder = lambda r: fenced(SUM_CSV)
    _, thread_id = await bot.code("sum a column")
    bot.gateway.thread_create(thread_id)
    bot.gateway.message(thread_id, "use this file", files=[("data.csv", CSV, DATA)])
    await settle()
    sent = [c.content for c in bot.fake.in_channel(thread_id) if c.key == SEND]
    assert "📎 Attached `data.csv`" in sent[-2] and "Writing version 2" in sent[-1]
    assert "Version 2 of #1" in bot.final(thread_id).content
    asked = fake.requests[-1].messages[-1].content
    assert asked.startswith("use this file") and "`data.csv`" in asked and "pen,3" in asked
    assert [v.request for v in await app.store.list_versions(1)][-1] == "use this file"


async def test_a_reply_right_after_a_file_comes_after_it(bot: Bot, fake: FakeEngine) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)  # cached: a reply without files joins the line at once
    bot.gateway.message(thread_id, "", files=[("data.csv", CSV, DATA)])
    bot.gateway.message(thread_id, "now sum it")  # while the file still downloads
    await settle()
    assert fake.requests[-1].messages[-1].content.startswith("now sum it")
    assert "`data.csv`" in fake.requests[-1].messages[-1].content  # it was attached first
    assert "Version 2 of #1" in bot.final(thread_id).content


async def test_a_file_over_the_limit_is_refused_by_name_without_a_download(
    bot: Bot, app: App
) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    big = b"\0" * (MAX_FILE_BYTES + 1)
    posted = bot.gateway.message(
        thread_id,
        "",
        files=[("big.bin", "application/octet-stream", big), ("data.csv", CSV, DATA)],
    )
    await settle()
    assert downloads(bot) == [posted["attachments"][1]["url"]]  # only the small one
    notice = bot.final(thread_id).content
    assert "📎 Attached `data.csv` (34 B) to #1" in notice
    assert "⚠️ `big.bin` was not attached: over 2.0 MB, the limit for one file." in notice
    assert [f.name for f in await app.store.list_files(1)] == ["data.csv"]


async def test_a_lone_pasted_message_txt_is_a_turn_not_a_file(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    bot.gateway.message(thread_id, "", files=[("message.txt", "text/plain", "add a docstring")])
    await settle()
    assert [v.request for v in await app.store.list_versions(1)] == ["start", "add a docstring"]
    assert await app.store.list_files(1) == []
    assert "Version 2 of #1" in bot.final(thread_id).content


async def test_a_failed_download_is_told_and_nothing_is_stored(bot: Bot, app: App) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    posted = bot.gateway.message(thread_id, "use it", files=[("data.csv", CSV, DATA)])
    del bot.fake.cdn[posted["attachments"][0]["url"]]  # gone before the bot downloads it: 404
    await settle()
    assert len(downloads(bot)) == 1
    assert await app.store.list_files(1) == [] and len(await app.store.list_versions(1)) == 1
    final = bot.final(thread_id)
    assert (
        final.key == SEND
        and "I couldn't download `data.csv` from the chat platform" in final.content
    )


# -- files out -------------------------------------------------------------------------------


async def test_a_run_that_saves_a_plot_shows_it_in_a_media_gallery(
    bot: Bot, app: App, fake: FakeEngine, needs_sandbox: None
) -> None:
    image = png()
    code = (
        f"with open('plot.png', 'wb') as f:\n    f.write({image!r})\n"
        "with open('sums.csv', 'w') as f:\n    f.write('a,1\\n')\n"
        "print('saved')"
    )
    fake.responder = lambda r: fenced(code)
    _, thread_id = await bot.code("plot it")

    calls = await bot.click(message_id(bot.final(thread_id)), "ct:run:1:1")
    result = calls[-1]
    assert result.key == ORIGINAL and "passed · exit 0" in result.content
    assert "📎 Made `plot.png`, `sums.csv`." in result.content
    assert dict(result.uploads) == {"plot.png": image, "sums.csv": b"a,1\n"}  # exact bytes
    assert gallery(result) == ["attachment://plot.png"]  # the picture shows in the card
    container = result.json["components"][0]
    assert container["type"] == 17 and container["accent_color"] == discord.Colour.green().value
    assert 12 in layout(result) and 13 in layout(result)  # the gallery, and the CSV as a file
    [file] = [c for c in container["components"] if c["type"] == 13]
    assert file["file"]["url"] == "attachment://sums.csv"
    assert components(result) == []
    shown = bot.fake.messages[message_id(result)]  # the "thinking…" post, edited into the card
    assert [a["filename"] for a in shown["attachments"]] == ["plot.png", "sums.csv"]

    # /snippets run: the same files, for the caller only
    token = bot.gateway.slash("snippets", subcommand="run", id=1)
    await settle()
    private = bot.for_token(token)[-1]
    assert private.key == FOLLOWUP and private.json["flags"] & EPHEMERAL
    assert dict(private.uploads)["plot.png"] == image
    assert gallery(private) == ["attachment://plot.png"]


# -- /snippets files -------------------------------------------------------------------------


async def test_snippets_files_lists_a_sessions_files_privately(bot: Bot) -> None:
    _, thread_id = await bot.code("start")
    bot.gateway.thread_create(thread_id)
    token = bot.gateway.slash("snippets", subcommand="files", id=1)
    await settle()
    empty = bot.for_token(token)[-1]
    assert empty.json["flags"] & EPHEMERAL and "Snippet #1 has no files" in empty.content

    bot.gateway.message(thread_id, "", files=[("data.csv", CSV, DATA)])
    await settle()
    token = bot.gateway.slash("snippets", subcommand="files", id=1)
    await settle()
    listing = bot.for_token(token)[-1]
    assert listing.key == FOLLOWUP and listing.json["flags"] & EPHEMERAL
    assert "**Files of #1** (1, 34 B)" in listing.content and "`data.csv`" in listing.content

    missing = bot.gateway.slash("snippets", subcommand="files", id=7)
    await settle()
    refusal = bot.for_token(missing)[-1]
    assert refusal.json["flags"] & EPHEMERAL and "No snippet session 7" in refusal.content
