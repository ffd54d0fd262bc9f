"""The ``codethread`` suite: tasks written for this project, each with its tests and a reference.

They are phrased the way people ask in chat (lowercase, an example instead of a spec, a name
for the function), in the four languages the sandbox can judge here: Python, JavaScript (Node),
Bash and C. About half have an adjust turn, a later message in the same session ("now handle
empty input"); their tests check the final behaviour, and each such task's ``first`` answer
(good for the first message alone) must fail them, which the tests of this package check.
"""

from __future__ import annotations

from bot.eval.data import bash, c, javascript, python
from bot.eval.suites import Task

__all__ = ["TASKS"]

TASKS: tuple[Task, ...] = (*python.TASKS, *javascript.TASKS, *bash.TASKS, *c.TASKS)
