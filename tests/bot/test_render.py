from __future__ import annotations

from bot.adapters.render import Throttle, partial, render_version
from bot.codeblocks import extract_code
from bot.languages import Languages
from storage import Session, SessionKey, Version

SESSION = Session(
    id=3, key=SessionKey(platform="x", workspace="w", channel="c", thread="t"), owner="u",
    language="python", model="m", title="t", created_at=0.0, updated_at=0.0, version_count=1,
)  # fmt: skip


def version(code: str) -> Version:
    return Version(
        id=1, session_id=3, number=1, request="r", code=code, note="A note.", model="m",
        prompt_tokens=None, completion_tokens=None, latency_ms=1500, status="ok", created_at=0.0,
    )  # fmt: skip


def test_short_version_is_one_message() -> None:
    out = render_version(SESSION, version("print(1)"), Languages().get("python"), limit=2000)
    assert out.filename is None and "```python\nprint(1)\n```" in out.text and "A note." in out.text


def test_long_version_becomes_a_file_with_preview() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(500))
    out = render_version(SESSION, version(code), Languages().get("rust"), limit=2000)
    assert out.filename == "snippet.rs" and out.file_content == code
    assert len(out.text) <= 2000 and "more lines in the file" in out.text
    got = extract_code(out.text)
    assert got is not None and got.complete and got.code.startswith("x0 = 0")


def test_partial_output_keeps_fences_whole() -> None:
    text = "Here:\n```python\n" + "\n".join(f"line {i}" for i in range(1000))
    shown = partial(text, limit=500)
    assert len(shown) <= 500
    got = extract_code(shown)
    assert got is not None and got.complete and "line 999" in got.code and got.info == "python"


def test_throttle_allows_one_edit_per_interval() -> None:
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle.ready() and not throttle.ready()
    now[0] = 0.99
    assert not throttle.ready()
    now[0] = 1.0
    assert throttle.ready()
