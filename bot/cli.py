"""The ``codethread`` command line (also ``python -m bot``).

Groups are nouns, commands are verbs; each docstring is the help text. User errors (unknown
language, model or session, someone else's session) print one line and exit non-zero.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
import platformdirs

from bot.adapters.console import ConsoleChat, console_caller
from bot.app import App, build
from bot.codeblocks import fence
from bot.config import load_config
from bot.errors import UserError
from bot.present.words import version_header
from engines import EngineError
from storage import StoreError

__all__ = ["main"]

T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    async def runner() -> T:
        return await coro

    try:
        return asyncio.run(runner())
    except (UserError, EngineError) as err:
        raise click.ClickException(str(err)) from None
    except (StoreError, sqlite3.Error) as err:
        raise click.ClickException(f"The database failed: {err}") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _log_to_file() -> None:
    """Keep the terminal for the conversation: logs (ours and the model libraries') go to a
    file in the user's log directory, and the libraries' own console handlers stay quiet."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    path = platformdirs.user_log_path("codethread", ensure_exists=True) / "codethread.log"
    logging.basicConfig(
        filename=path, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@asynccontextmanager
async def _app() -> AsyncIterator[App]:
    app = await build(load_config(), adapters=False)
    try:
        yield app
    finally:
        await app.aclose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codethread")
@click.pass_context
def main(ctx: click.Context) -> None:
    """codethread: a chat bot that writes code, one thread per snippet."""
    if ctx.invoked_subcommand != "serve":  # a service logs to stderr; the terminal doesn't
        _log_to_file()


@main.command()
@click.option(
    "--language", "-l", help="Language of a new snippet (default: CODETHREAD_LANGUAGE or python)."
)
@click.option("--model", "-m", help="Model reference: a catalog name, openai:ID or hf:PATH.")
@click.option("--session", "-s", "session_id", type=int, help="Resume one of your sessions by id.")
def chat(language: str | None, model: str | None, session_id: int | None) -> None:
    """Talk to codethread in the terminal: the first line asks, later lines adjust."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    async def go() -> None:
        async with _app() as app:
            service = app.service
            caller = console_caller()
            session = await service.owned(session_id, caller) if session_id is not None else None
            if language is not None:
                service.language(language)
            spec = service.model(model or (session.model if session else None))
            service.warm(spec)  # start loading now, while the user types
            if interactive:
                click.echo(
                    f"codethread · {spec.name} · type what the code should do; /help for commands",
                    err=True,
                )
            await app.runs.prepare()
            chat = ConsoleChat(
                service,
                app.presenter,
                out=sys.stdout,
                interactive=interactive,
                language=language,
                model=model,
                session=session,
                caller=caller,
            )
            await chat.run(_lines(interactive))

    _run(go())


async def _lines(interactive: bool) -> AsyncIterator[str]:
    """Input lines, one at a time when the conversation asks for the next.

    A daemon thread does the blocking read, so Ctrl-C or the end of the program never waits
    for a pending ``input()``.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    wanted = threading.Event()

    def read() -> None:
        while True:
            wanted.wait()
            wanted.clear()
            try:
                line: str | None = input("> ") if interactive else sys.stdin.readline() or None
            except EOFError:
                line = None
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


@main.group()
def snippets() -> None:
    """List, show and delete your snippet sessions."""


@snippets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", default=50, show_default=True, help="How many sessions to list.")
def snippets_list(as_json: bool, limit: int) -> None:
    """List your sessions, newest first."""

    async def go() -> None:
        async with _app() as app:
            sessions = await app.service.list_sessions(console_caller(), limit=limit)
        if as_json:
            rows: list[dict[str, Any]] = [
                {
                    "id": s.id,
                    "title": s.title,
                    "language": s.language,
                    "model": s.model,
                    "versions": s.version_count,
                    "created_at": s.created_at,
                    "updated_at": s.updated_at,
                }
                for s in sessions
            ]
            click.echo(json.dumps(rows, indent=2))
            return
        if not sessions:
            click.echo("No snippets yet. Start one with: codethread chat")
        for s in sessions:
            when = datetime.fromtimestamp(s.updated_at).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{s.id:>5}  {when}  {s.language:<10} v{s.version_count:<3} {s.title}")

    _run(go())


@snippets.command("show")
@click.argument("session_id", type=int)
@click.option("--version", "-v", "number", type=int, help="Version number (default: latest).")
def snippets_show(session_id: int, number: int | None) -> None:
    """Print one version of a session as a fenced code block."""

    async def go() -> None:
        async with _app() as app:
            session, version = await app.service.show(
                session_id, number=number, caller=console_caller()
            )
            language = app.service.language(session.language)
        if version is None:
            click.echo(f"Session {session.id} ({session.title}) has no version yet.")
            return
        click.echo(f"── {version_header(session, version)}")
        click.echo(fence(version.code, language.fence))
        if version.note:
            click.echo(version.note)

    _run(go())


@snippets.command("delete")
@click.argument("session_id", type=int)
def snippets_delete(session_id: int) -> None:
    """Delete one of your sessions with all its versions."""

    async def go() -> None:
        async with _app() as app:
            session = await app.service.delete(session_id, console_caller())
        click.echo(f"Deleted session {session.id} ({session.title}).")

    _run(go())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(as_json: bool) -> None:
    """List the model catalog and whether each model is ready to use."""

    async def go() -> None:
        async with _app() as app:
            statuses = await app.engines.probe()
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "name": st.spec.name,
                            "ref": st.spec.ref,
                            "description": st.spec.description,
                            "default": st.default,
                            "status": str(st.readiness) if st.readiness else "not loaded",
                        }
                        for st in statuses
                    ],
                    indent=2,
                )
            )
            return
        for st in statuses:
            status = (
                str(st.readiness) if st.readiness else "not loaded (loads when the service starts)"
            )
            mark = "*" if st.default else " "
            click.echo(f"{mark} {st.spec.name:<14} {st.spec.ref:<44} {status}")

    _run(go())


@main.command()
@click.option(
    "--port", default=8080, show_default=True, help="Port of /healthz, /metrics and /slack/events."
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
def serve(port: int, host: str) -> None:
    """Run the chat adapters whose credentials are set, with /healthz and /metrics."""
    from bot.server import serve as run_server

    _run(run_server(load_config(), host=host, port=port))
