"""The wording and the limits of every view, once for all surfaces."""

from __future__ import annotations

import dataclasses

from bot.codeblocks import extract_code
from bot.errors import NotOwner
from bot.languages import Languages
from bot.present import words
from bot.present.views import Notice
from bot.values import Action, Failed, RunReport
from engines import EngineUnavailable
from sandbox import RunResult
from storage import Session, SessionKey, Version

SESSION = Session(
    id=3, key=SessionKey(platform="x", workspace="w", channel="c", thread="t"), owner="u",
    language="python", model="m", title="t", created_at=0.0, updated_at=0.0, version_count=1,
)  # fmt: skip
PYTHON = Languages().get("python")


def version(code: str) -> Version:
    return Version(
        id=1, session_id=3, number=1, request="r", code=code, note="A note.", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=1500, status="ok", created_at=0.0,
    )  # fmt: skip


def fences_balanced(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```")) % 2 == 0


def test_short_version_is_one_message() -> None:
    run = Action(kind="run", session_id=3, number=1)
    card = words.version_card(SESSION, version("print(1)"), PYTHON, actions=(run,), limit=2000)
    assert card.file is None and "```python\nprint(1)\n```" in card.text and "A note." in card.text
    assert "Version 1 of #3" in card.text and card.actions == (run,)
    assert card.code == "print(1)" and card.fence == "python"


def test_long_version_becomes_a_file_with_preview() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(500))
    card = words.version_card(
        SESSION, version(code), Languages().get("rust"), actions=(), limit=2000
    )
    assert card.file is not None and card.file.filename == "snippet.rs"
    assert card.file.content == code and card.file.language == "rust"
    assert len(card.text) <= 2000 and "more lines in the file" in card.text
    got = extract_code(card.text)
    assert got is not None and got.complete and got.code.startswith("x0 = 0")


def test_a_cut_off_answer_says_so() -> None:
    card = words.version_card(
        SESSION, version("x = 1"), PYTHON, actions=(), limit=2000, complete=False
    )
    assert "cut off" in card.text and len(card.text) <= 2000


def test_partial_output_keeps_fences_whole() -> None:
    text = "Here:\n```python\n" + "\n".join(f"line {i}" for i in range(1000))
    shown = words.partial(text, limit=500)
    assert len(shown) <= 500
    got = extract_code(shown)
    assert got is not None and got.complete and "line 999" in got.code and got.info == "python"
    view = words.writing(2, "m", text, limit=600)
    assert len(view.text) <= 600 and "Writing version 2 with `m`" in view.text
    assert fences_balanced(view.text)


def test_a_long_answer_without_code_goes_whole_as_a_file() -> None:
    short = words.noncode("Which dialect?", limit=2000)
    assert "No code in this answer" in short.text and short.file is None
    long = words.noncode("word " * 2000, limit=2000)
    assert len(long.text) <= 2000 and long.file is not None
    assert long.file.content == "word " * 2000


def test_run_card_fits_with_its_fences_whole_and_offers_what_the_core_said() -> None:
    result = RunResult(
        status="limit", exit_code=None, stdout="x" * 10_000 + "END", stderr="Killed",
        duration_ms=2000, peak_memory_kb=51200, limit_hit="wall_time",
    )  # fmt: skip
    fix = Action(kind="fix", session_id=3, number=1)
    report = RunReport(session=SESSION, version=version("print(1)"), result=result, actions=(fix,))
    card = words.run_card(report, PYTHON, limit=2000)
    assert card.summary == "Run of version 1 of #3 was stopped by a limit"
    assert "limit hit: wall time" in card.text and "no exit code" in card.text
    assert "2.00 s" in card.text and "peak 50.0 MB" in card.text
    assert "**stderr**\n```text\nKilled\n```" in card.text
    assert "END" in card.text and "more characters before" in card.text  # the end is kept
    assert len(card.text) <= 2000 and fences_balanced(card.text)
    assert card.actions == (fix,) and not card.passed


def test_tests_go_inline_when_short_else_as_their_file_with_a_preview() -> None:
    passed = RunResult(status="ok", exit_code=0, stdout="3\n", stderr="", duration_ms=10)
    short = "import unittest\n\nclass T(unittest.TestCase):\n    pass\n"
    report = RunReport(
        session=SESSION, version=version("x"), result=passed, kind="test", tests=short
    )
    card = words.run_card(report, PYTHON, limit=4000)
    assert card.summary == "Tests of version 1 of #3 passed" and card.passed
    assert f"**The tests**\n```python\n{short}```" in card.text and card.file is None

    long = short + "".join(f"    def test_{i}(self):\n        pass\n" for i in range(300))
    card = words.run_card(dataclasses.replace(report, tests=long), PYTHON, limit=4000)
    assert "more lines in `test_snippet.py`, attached" in card.text and "test_5" not in card.text
    assert card.file is not None and card.file.content == long
    assert len(card.text) <= 4000 and fences_balanced(card.text)


def test_failures_offer_retry_only_when_the_request_was_kept() -> None:
    retry = Action(kind="retry", session_id=3, failure=9)
    kept = words.failure(
        Failed(session=SESSION, message="The model server answered 500.", request="r",
               failure=9, actions=(retry,))
    )  # fmt: skip
    assert "500" in kept.text and "Retry" in kept.text and kept.actions == (retry,)
    lost = words.failure(Failed(session=SESSION, message="Deleted.", request="r"))
    assert "Retry" not in lost.text and lost.actions == ()


def test_explain_words_every_kind_of_error_in_one_line() -> None:
    assert words.explain(NotOwner(3)).startswith("Session 3 belongs to someone else")
    assert words.explain(EngineUnavailable("The model server answered 500.")).endswith("500.")
    assert "invite me" in words.explain(words.PlatformRefused("not_in_channel"))
    limited = words.PlatformRefused("rate_limited", retry_after=7)
    assert "try again in 7 s" in words.explain(limited)
    assert "went wrong on my side" in words.explain(RuntimeError("secret detail"))
    notice = words.problem(NotOwner(3), request="my request")
    assert isinstance(notice, Notice) and notice.problem and "my request" in notice.text


def test_user_text_is_escaped_in_posts_and_lists() -> None:
    post = words.request_post(
        who="<@U1>", language=PYTHON, model="m", prompt="say <hi>\n\nplease",
        limit=3000, escape=lambda t: t.replace("<", "&lt;"),
    )  # fmt: skip
    assert "<@U1> asked for a **Python** snippet" in post.text and "say &lt;hi>" in post.text
    listed = words.snippet_list(
        [dataclasses.replace(SESSION, title="a <b>")], {3: "https://x/t"}, limit=2000,
        escape=lambda t: t.replace("<", "&lt;"),
    )  # fmt: skip
    assert "[a &lt;b>](https://x/t)" in listed.text


def test_buttons_read_the_same_everywhere() -> None:
    delete = words.look(Action(kind="delete", session_id=4))
    assert delete.label == "Delete session" and delete.style == "danger"
    assert delete.confirm is not None and "Session #4" in delete.confirm[1]
    assert words.look(Action(kind="run", session_id=4, number=1)).label == "Run"
    assert words.commands((Action(kind="run", session_id=4, number=2),)) == "Next: /run 2"


def test_actions_survive_a_button_round_trip() -> None:
    for action in (
        Action(kind="run", session_id=12, number=3),
        Action(kind="retry", session_id=12, failure=7),
        Action(kind="delete", session_id=12),
        Action(kind="fix", session_id=12),
    ):
        assert Action.decode(action.encode()) == action
    assert Action.decode("nope:1") is None and Action.decode("run:x") is None


def test_an_answer_in_another_language_says_which() -> None:
    view = words.noncode("```js\nx\n```", limit=2000, language="JavaScript", wanted="Python")
    assert "answered in JavaScript, not Python" in view.text and "/code javascript" in view.text
