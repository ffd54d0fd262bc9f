"""The scripted model of ``codethread eval --reference``: each task's reference solution.

It is a :class:`~engines.FakeEngine` (the ``fake:`` scheme's engine) with a responder that
knows the suites: it finds the task by the conversation's first message and answers with the
task's reference in a fenced block, so the run takes the very path a model's answer takes
(streaming, extraction, a stored version, the judge). A task with an adjust turn first gets its
``first`` answer, the one good for the first message alone, and the reference after the adjust
message. A reference run that does not pass every task shows a false failure of the sandbox or
the judge, not of a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.codeblocks import fence
from bot.eval.suites import Task
from bot.languages import Languages
from engines import Engine, FakeEngine, GenerationRequest, ModelSpec, create_engine

__all__ = ["REFERENCE_MODEL", "REFERENCE_REF", "ReferenceAnswers", "reference_factory"]

#: the model reference a reference run uses, and the name its results carry
REFERENCE_REF = "fake:reference"
REFERENCE_MODEL = "reference"


class ReferenceAnswers:
    """A :class:`FakeEngine` responder: the reference answer to a task's conversation."""

    def __init__(self, tasks: Iterable[Task], languages: Languages | None = None) -> None:
        self._languages = languages or Languages()
        self._tasks = {task.prompt.strip(): task for task in tasks}

    def __call__(self, request: GenerationRequest) -> str:
        asked = [m.content for m in request.messages if m.role == "user"]
        task = self._tasks.get(asked[0].strip()) if asked else None
        if task is None:
            return "That is not one of the tasks I know the answer to."
        code = task.first if task.first is not None and len(asked) == 1 else task.reference
        tag = self._languages.get(task.language).fence
        return f"The reference solution of {task.id}.\n\n{fence(code, tag)}\n"


def reference_factory(
    tasks: Iterable[Task], fallback: Callable[[ModelSpec], Engine] = create_engine
) -> Callable[[ModelSpec], Engine]:
    """An engine factory for ``build()``: :data:`REFERENCE_REF` answers with the references,
    every other model comes from ``fallback``."""
    answers = ReferenceAnswers(tasks)

    def factory(spec: ModelSpec) -> Engine:
        if spec.ref == REFERENCE_REF:
            return FakeEngine(answers, model=REFERENCE_MODEL, context_window=spec.context_window)
        return fallback(spec)

    return factory
