"""Reaping the sandbox's pid 1 when the bot is an init, so that no run leaves a zombie.

The sandbox's pid 1 is bwrap's own small init (it reaps every process of the sandbox). Its
parent is the bwrap process the runner started, which exits as soon as the program has, or is
killed at a limit, without waiting for pid 1. The kernel then gives pid 1 to the nearest
*reaper*: the host's init - or the bot itself when the bot is PID 1 (a container without an
init) or a child subreaper. Nobody waits for it there, so every run would leave a zombie, and
zombies count against the user's process limit: after some sixty runs nothing starts, not even
``print('hello')``.

:func:`reap` waits for that one process if, and only if, it is now the bot's child. It waits
through the process's pidfd (``waitid(P_PIDFD)``), so no other child of the bot (asyncio's,
``subprocess``') is ever touched, and a pid reused meanwhile cannot be hit. Processes the bot
did not start are none of the sandbox's business: a container should still run an init
(compose's ``init: true``).
"""

from __future__ import annotations

import os

__all__ = ["reap"]


def reap(pidfd: int) -> bool:
    """Reap the ended process of ``pidfd`` if it is this process's child; whether it was."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:  # not ours: the host's init (or another reaper) waits for it
        return False
    return result is not None
