"""Adapters translate a platform's events into calls on the session service, and back.

:func:`console_caller` lives here, not in :mod:`.console`, so that the CLI's quick commands
(``snippets list``) name the terminal user without importing rich.
"""

from __future__ import annotations

import getpass

from bot.values import Caller

__all__ = ["console_caller"]


def console_caller() -> Caller:
    """The terminal user, who runs the bot themselves: a trusted caller."""
    return Caller(
        platform="console",
        workspace="local",
        user=getpass.getuser(),
        channel="terminal",
        trusted=True,
    )
