from __future__ import annotations

from bot.codeblocks import close_open_fence, extract_code, fence


def test_one_block_with_prose_around_it() -> None:
    got = extract_code("Sure:\n\n```python\nimport csv\nprint(1)\n```\n\nRun it with python3.")
    assert got is not None
    assert got.code == "import csv\nprint(1)"
    assert got.note == "Sure:\n\nRun it with python3."
    assert got.info == "python" and got.complete


def test_no_block_or_empty_block_is_no_code() -> None:
    assert extract_code("I can't help with that.") is None
    assert extract_code("```python\n\n```") is None


def test_longest_block_wins_and_the_rest_stays_in_the_note() -> None:
    text = "```sh\npip install x\n```\nThen:\n```python\nimport x\nx.run()\nx.stop()\n```"
    got = extract_code(text)
    assert got is not None and got.code == "import x\nx.run()\nx.stop()"
    assert "pip install x" in got.note


def test_tilde_fences_and_longer_fences_nest_backticks() -> None:
    got = extract_code("~~~js\nconst s = `a`;\n~~~")
    assert got is not None and got.code == "const s = `a`;"
    got = extract_code("````md\n```\ninner\n```\n````")
    assert got is not None and got.code == "```\ninner\n```"


def test_cut_off_answer_still_yields_code() -> None:
    got = extract_code("```python\ndef f():\n    return")
    assert got is not None and not got.complete and got.code == "def f():\n    return"


def test_fence_is_never_broken_by_backticks_in_code() -> None:
    code = 'doc = """```python\nx```"""'
    block = fence(code, "python")
    assert block.startswith("````python\n") and block.endswith("\n````")
    got = extract_code(block)
    assert got is not None and got.code == code


def test_close_open_fence_for_partial_output() -> None:
    assert close_open_fence("a\n```py\nx = 1") == "a\n```py\nx = 1\n```"
    assert close_open_fence("```py\nx\n```") == "```py\nx\n```"
