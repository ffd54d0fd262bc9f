"""The terminal's input: prompt_toolkit's line editor for people, plain lines for pipes.

Interactive (:class:`PromptInput`, the editor aider and IPython use): arrow keys and Emacs
keys edit the line, Up/Down and Ctrl-R walk a history kept under the user's state directory, a
bracketed paste of several lines arrives as one message, Esc-Enter (Alt-Enter) starts a new
line, and there is no line-length limit below the bot's own ``max_prompt_chars`` (the
terminal's canonical mode, which cuts lines at 4,095 characters, is not used). Ctrl-C clears a
line being typed; at an empty prompt it warns once, and a second Ctrl-C leaves; Ctrl-D leaves.

Piped (:func:`piped_lines`): one message per line of standard input, read in a worker thread
so that the end of the program never waits for a pending read.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

__all__ = ["PromptInput", "piped_lines"]

PROMPT = "> "


def _bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.text:
            buffer.reset()  # a line being typed is cleared, the prompt stays
        else:
            event.app.exit(exception=KeyboardInterrupt())

    return bindings


class PromptInput:
    """Lines from a person at a terminal (see the module doc)."""

    def __init__(self, *, history: Path | None, on_first_interrupt: str) -> None:
        if history is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                history.parent.chmod(0o700)  # it holds what people asked
                store: FileHistory | InMemoryHistory = FileHistory(str(history))
            except OSError:  # an unwritable state dir: this session's history only
                store = InMemoryHistory()
        else:
            store = InMemoryHistory()
        self.session: PromptSession[str] = PromptSession(
            history=store, key_bindings=_bindings(), enable_history_search=True
        )
        self.on_first_interrupt = on_first_interrupt

    async def confirm(self, question: str) -> bool:
        """A yes/no question at the prompt (no, unless the answer starts with y)."""
        try:
            answer = await self.session.prompt_async(f"{question} [y/N] ")
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower().startswith("y")

    async def lines(self) -> AsyncIterator[str]:
        warned = False
        while True:
            try:
                text = await self.session.prompt_async(PROMPT)
            except KeyboardInterrupt:
                if warned:
                    return
                warned = True
                print(self.on_first_interrupt, file=sys.stderr)
                continue
            except EOFError:
                return
            warned = False
            yield text


async def piped_lines() -> AsyncIterator[str]:
    """Standard input, line by line, read in a daemon thread."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    wanted = threading.Event()

    def read() -> None:
        while True:
            wanted.wait()
            wanted.clear()
            line = sys.stdin.readline() or None
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is gone: the program is ending
                return
            if line is None:
                return

    threading.Thread(target=read, name="codethread-input", daemon=True).start()
    while True:
        wanted.set()
        line = await lines.get()
        if line is None:
            return
        yield line
