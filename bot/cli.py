"""The ``codethread`` command line (also ``python -m bot``).

Groups are nouns, commands are verbs; each docstring is the help text. User errors (unknown
language, model or session, someone else's session) print one line and exit non-zero.

Imports are lazy: a command imports what it uses when it runs, so ``--help``, ``snippets
list`` and ``snippets show`` start in about a tenth of a second (``python -m bench.cli``)
instead of paying for rich, prompt_toolkit, aiohttp, prometheus_client and the chat libraries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import platformdirs

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Config
    from bot.values import Caller
    from storage import Session, Version

__all__ = ["main"]

T = TypeVar("T")

#: what the built-in local models weigh on disk, for the first-run line
_DOWNLOAD_SIZES = {"qwen-coder": "3 GB", "hermes": "16 GB"}


def _run(coro: Awaitable[T]) -> T:
    import asyncio  # 25 ms: not for --help
    import sqlite3

    from bot.errors import UserError
    from engines import EngineError
    from storage import StoreError

    async def runner() -> T:
        return await coro

    try:
        return asyncio.run(runner())
    except (UserError, EngineError) as err:
        raise click.ClickException(str(err)) from None
    except (StoreError, sqlite3.Error) as err:
        raise click.ClickException(f"The database failed: {err}") from None
    except OSError as err:  # an unwritable HOME or folder, a full disk: one line, no traceback
        where = f"{err.filename}: " if err.filename else ""
        raise click.ClickException(f"{where}{err.strerror or err}") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _log_to_file() -> None:
    """Keep the terminal for the conversation: logs (ours and the model libraries') go to a
    file in the user's log directory (``~/.local/state/codethread/log/codethread.log`` on
    Linux), and the libraries' log messages stay quiet. Download progress bars stay: a first
    local model is gigabytes, and a silent terminal would look hung.

    Where the log directory cannot be made (an unwritable HOME), there is no log file; warnings
    and errors then reach stderr through logging's last-resort handler.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    try:
        path = platformdirs.user_log_path("codethread", ensure_exists=True) / "codethread.log"
        handler: logging.Handler = logging.FileHandler(path)
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


@asynccontextmanager
async def _app() -> AsyncIterator[App]:
    from bot.app import build
    from bot.config import check_db_path, load_config

    config = load_config()
    check_db_path(config)
    app = await build(config, adapters=False)
    try:
        yield app
    finally:
        await app.aclose()


def _caller() -> Caller:
    """The terminal user, whose sessions the CLI shows (the caller ``chat`` uses too)."""
    from bot.adapters import console_caller

    return console_caller()


def _first_run_notice(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The line ``chat`` prints first (on stderr) when no OpenAI key or server is set and the
    default is therefore a local model: which one, and what its first use costs.

    None when a key or server is set, when ``CODETHREAD_MODEL`` names the model (the user
    knows what they chose), or when the model is not a local one.
    """
    from engines import Catalog, EngineError

    env = os.environ if env is None else env
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL") or env.get("CODETHREAD_MODEL"):
        return None
    try:
        spec = Catalog.builtin().with_specs(config.models).resolve(config.model)
    except EngineError:
        return None  # build() refuses it in one line
    if spec.scheme not in ("hf", "hf-chatml"):
        return None
    size = _DOWNLOAD_SIZES.get(spec.name)
    cost = f"a {size} download on first use" if size else "downloaded on first use"
    return f"no OpenAI key or server set: using the local model {spec.name}, {cost}"


#: the services' --log-level (serve, worker)
_log_level = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="CODETHREAD_LOG_LEVEL",
    help="Least severe log lines written (env CODETHREAD_LOG_LEVEL).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codethread")
@click.pass_context
def main(ctx: click.Context) -> None:
    """codethread: a chat bot that writes code, one thread per snippet."""
    if ctx.invoked_subcommand not in ("serve", "worker"):  # services log to stderr
        _log_to_file()


@main.command()
@click.option(
    "--language", "-l", help="Language of a new snippet (default: CODETHREAD_LANGUAGE or python)."
)
@click.option("--model", "-m", help="Model reference: a catalog name, openai:ID or hf:PATH.")
@click.option("--session", "-s", "session_id", type=int, help="Resume one of your sessions by id.")
def chat(language: str | None, model: str | None, session_id: int | None) -> None:
    """Talk to codethread in the terminal: the first line asks, later lines adjust."""
    from bot.adapters.console import ConsoleChat, console_caller  # rich: only for chat
    from bot.adapters.prompt import PromptInput, piped_lines  # prompt_toolkit: only for chat
    from bot.present.words import CONSOLE

    interactive = sys.stdin.isatty() and sys.stdout.isatty()

    async def go() -> bool:
        async with _app() as app:
            service = app.service
            caller = console_caller()
            session = await service.owned(session_id, caller) if session_id is not None else None
            if language is not None:
                service.language(language)
            if session is not None and (language or model):
                click.echo(CONSOLE["fixed"], err=True)
            spec = service.model(session.model if session else model)
            if session is None and model is None and (notice := _first_run_notice(app.config)):
                click.echo(notice, err=True)
            service.warm(spec)  # start loading now, while the user types
            if interactive:
                click.echo(CONSOLE["banner"].format(model=spec.name), err=True)
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
            if interactive:
                history = platformdirs.user_state_path("codethread") / "history"
                prompt = PromptInput(history=history, on_first_interrupt=CONSOLE["leave"])
                chat.confirm = prompt.confirm
                await chat.run(prompt.lines())
            else:
                await chat.run(piped_lines())
            return chat.ok

    if not _run(go()) and not interactive:
        raise SystemExit(1)  # piped: some turn failed or was refused (each said why)


@main.group()
def snippets() -> None:
    """List, show, diff, export and delete your snippet sessions."""


def _session_row(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "language": s.language,
        "model": s.model,
        "versions": s.version_count,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


@snippets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--search", metavar="TEXT", help="Only sessions whose title, requests, notes or code say this."
)
@click.option("--limit", default=50, show_default=True, help="How many sessions to list.")
def snippets_list(as_json: bool, search: str | None, limit: int) -> None:
    """List your sessions, newest first.

    Sessions without a version yet (a failed first request, an answer without code) are left
    out, and removed after a day."""

    async def go() -> None:
        async with _app() as app:
            sessions = await app.service.list_sessions(_caller(), limit=limit, search=search)
        if as_json:
            click.echo(json.dumps([_session_row(s) for s in sessions], indent=2))
            return
        if not sessions:
            click.echo(
                f"No snippets match {search!r}."
                if search
                else "No snippets yet. Start one with: codethread chat"
            )
        for s in sessions:
            when = datetime.fromtimestamp(s.updated_at).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{s.id:>5}  {when}  {s.language:<10} v{s.version_count:<3} {s.title}")

    _run(go())


@snippets.command("show")
@click.argument("session_id", type=int)
@click.option("--version", "-v", "number", type=int, help="Version number (default: latest).")
@click.option("--raw", is_flag=True, help="Only the code, e.g. `snippets show 3 --raw > x.py`.")
@click.option("--json", "as_json", is_flag=True, help="The version's fields as JSON.")
def snippets_show(session_id: int, number: int | None, raw: bool, as_json: bool) -> None:
    """Print one version of a session.

    By default a header and a fenced code block; --raw prints the code alone, --json the
    version's fields."""
    if raw and as_json:
        raise click.UsageError("--raw and --json exclude each other; pick one.")

    async def go() -> None:
        from bot.codeblocks import fence
        from bot.present.words import version_header

        async with _app() as app:
            session, version = await app.service.show(session_id, number=number, caller=_caller())
            language = app.service.language(session.language)
        if version is None:
            if raw or as_json:
                raise click.ClickException(f"Session {session.id} has no version yet.")
            click.echo(f"Session {session.id} ({session.title}) has no version yet.")
            return
        if raw:
            click.echo(version.code, nl=not version.code.endswith("\n"))
        elif as_json:
            fields = dataclasses.asdict(version)
            fields.update(language=session.language, title=session.title)
            click.echo(json.dumps(fields, indent=2))
        else:
            click.echo(f"── {version_header(session, version)}")
            click.echo(fence(version.code, language.fence))
            if version.note:
                click.echo(version.note)

    _run(go())


@snippets.command("diff")
@click.argument("session_id", type=int)
@click.argument("old", type=int, required=False)
@click.argument("new", type=int, required=False)
def snippets_diff(session_id: int, old: int | None, new: int | None) -> None:
    """Show what changed between two versions.

    A unified diff from version OLD to version NEW: by default the last two; with OLD alone,
    OLD against the latest."""

    async def go() -> None:
        async with _app() as app:
            comparison = await app.service.diff(session_id, _caller(), old, new, owned=True)
        a, b = comparison.old, comparison.new
        if comparison.diff:
            click.echo(comparison.diff, nl=False)
        else:
            click.echo(
                f"Versions {a.number} and {b.number} of #{comparison.session.id} are the same.",
                err=True,
            )

    _run(go())


@snippets.command("export")
@click.argument("session_id", type=int)
@click.option("--version", "-v", "number", type=int, help="Version number (default: latest).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write, replaced if it exists; - for stdout (default: ./snippet.EXT).",
)
def snippets_export(session_id: int, number: int | None, output: Path | None) -> None:
    """Write one version's code to a file.

    The file is named for the language (snippet.py, snippet.rs …) unless -o names one."""

    async def go() -> tuple[Session, Version, str]:
        async with _app() as app:
            session, version = await app.service.show(session_id, number=number, caller=_caller())
            extension = app.service.language(session.language).extension
        if version is None:
            raise click.ClickException(f"Session {session.id} has no version yet.")
        return session, version, extension

    session, version, extension = _run(go())
    code = version.code if version.code.endswith("\n") else version.code + "\n"
    if output is not None and str(output) == "-":
        click.echo(code, nl=False)
        return
    path = output or Path(f"snippet.{extension}")
    if output is None and path.exists():
        raise click.ClickException(f"{path} exists already: name another file with -o PATH.")
    try:
        path.write_text(code, encoding="utf-8")
    except OSError as err:
        raise click.ClickException(f"Cannot write {path}: {err.strerror or err}.") from None
    click.echo(f"Wrote version {version.number} of #{session.id} to {path}.", err=True)


@snippets.command("delete")
@click.argument("session_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def snippets_delete(session_id: int, yes: bool) -> None:
    """Delete one of your sessions.

    All its versions go with it. Asks first, unless --yes."""

    async def go() -> None:
        async with _app() as app:
            caller = _caller()
            session = await app.service.owned(session_id, caller)
            if not yes:
                if not sys.stdin.isatty():
                    raise click.ClickException(
                        f"Not deleting session {session.id} without a confirmation, and stdin "
                        "is not a terminal to ask on: pass --yes."
                    )
                versions = f"{session.version_count} version" + (
                    "" if session.version_count == 1 else "s"
                )
                click.confirm(
                    f"Delete session {session.id} ({session.title}) and its {versions}?",
                    abort=True,
                )
            await app.service.delete(session_id, caller)
        click.echo(f"Deleted session {session.id} ({session.title}).")

    _run(go())


@main.group()
def tokens() -> None:
    """Create, list and revoke the bearer tokens of the HTTP API."""


def _when(stamp: float | None, none: str) -> str:
    return none if stamp is None else datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


@tokens.command("create")
@click.option("--user", "-u", required=True, help="Whom the token speaks for (owns what it makes).")
@click.option(
    "--expires",
    "days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Expire after this many days (default: never, until revoked).",
)
@click.option("--label", default="", help="What the token is for, shown by `tokens list`.")
def tokens_create(user: str, days: float | None, label: str) -> None:
    """Make a token and print it, once.

    Only its hash is kept, so it cannot be shown again: store it where the client reads it
    (`Authorization: Bearer <token>`). Lost, it is revoked and replaced, not recovered."""

    async def go() -> None:
        from bot.tokens import issue

        async with _app() as app:
            try:
                text, token = await issue(app.store, user, days=days, label=label)
            except ValueError as err:
                raise click.UsageError(str(err)) from None
        click.echo(text)
        expiry = "" if token.expires_at is None else f", expires {_when(token.expires_at, '')}"
        click.echo(
            f"Token {token.id} for {token.user}{expiry}: shown only now, it cannot be shown again.",
            err=True,
        )

    _run(go())


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tokens_list(as_json: bool) -> None:
    """List every token, newest first, revoked and expired ones too (never the tokens
    themselves: only their hashes are kept)."""

    async def go() -> None:
        async with _app() as app:
            found = await app.store.list_tokens()
        if as_json:
            rows = [
                {"id": t.id, "user": t.user, "label": t.label, "created_at": t.created_at,
                 "expires_at": t.expires_at, "last_used_at": t.last_used_at,
                 "revoked_at": t.revoked_at}
                for t in found
            ]  # fmt: skip
            click.echo(json.dumps(rows, indent=2))
            return
        if not found:
            click.echo("No tokens yet. Make one with: codethread tokens create --user NAME")
            return
        click.echo(
            f"{'id':>5}  {'user':<16} {'created':<16}  {'expires':<16}  {'last used':<16}  "
            f"{'revoked':<16}  label"
        )
        for t in found:
            click.echo(
                f"{t.id:>5}  {t.user:<16} {_when(t.created_at, '-'):<16}  "
                f"{_when(t.expires_at, 'never'):<16}  {_when(t.last_used_at, 'never'):<16}  "
                f"{_when(t.revoked_at, '-'):<16}  {t.label}".rstrip()
            )

    _run(go())


@tokens.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token ID (see `tokens list`): the API refuses it from its next request on."""

    async def go() -> None:
        async with _app() as app:
            revoked = await app.store.revoke_token(token_id)
        if not revoked:
            raise click.ClickException(f"No token with id {token_id}: see codethread tokens list.")
        click.echo(f"Revoked token {token_id}.")

    _run(go())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--server",
    "server",
    is_flag=True,
    help="List what the default model's server offers (GET /models) instead.",
)
def models(as_json: bool, server: bool) -> None:
    """List the model catalog and whether each model is ready to use (servers are asked)."""

    async def go() -> None:
        async with _app() as app:
            if server:
                offered = await app.engines.server_models(None)
                click.echo(json.dumps(offered) if as_json else "\n".join(offered))
                return
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
    "--port",
    default=8080,
    show_default=True,
    help="Port of /livez, /readyz, /metrics and /slack/events.",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@_log_level
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="CODETHREAD_LOG_FORMAT",
    help="Plain lines, or one JSON object a line with session and job ids.",
)
def serve(port: int, host: str, log_level: str, log_format: str) -> None:
    """Run the chat adapters whose credentials are set, with /livez, /readyz and /metrics."""
    from bot import logs
    from bot.config import check_db_path, load_config
    from bot.server import serve as run_server

    logs.setup(level=log_level, format="json" if log_format == "json" else "text")

    async def go() -> None:
        config = load_config()
        check_db_path(config)
        await run_server(config, host=host, port=port)

    _run(go())


@main.command()
@_log_level
def worker(log_level: str) -> None:
    """Perform the sandbox runs that `serve` processes write down (run_workers = true).

    Claims runs from the shared database (CODETHREAD_DB, a PostgreSQL URL when serve runs on
    other machines), as many at once as this machine has cores, in its own bubblewrap
    sandbox, until Ctrl-C or SIGTERM. Needs the same config as serve."""
    from bot import logs
    from bot.config import check_db_path, load_config
    from bot.server import work

    logs.setup(level=log_level, format="text")

    async def go() -> None:
        config = load_config()
        check_db_path(config)
        await work(config)

    _run(go())


@main.command("web")
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (default: a free one).",
)
def web_command(port: int) -> None:
    """Open your snippets in the browser, on this machine.

    Serves the page and the API of `serve` (without the chat adapters) on 127.0.0.1 and opens
    a sign-in link that works once, within ten minutes (printed too). Runs until Ctrl-C."""
    from bot.config import check_db_path, load_config
    from bot.web.launch import launch

    async def go() -> None:
        config = load_config()
        check_db_path(config)
        await launch(config, port=port, echo=click.echo)

    _run(go())


@main.command()
def doctor() -> None:
    """Check the setup, one line per check.

    Each line is ✓ or ✗ with the fix: the default model, the Hugging Face cache and offline
    mode, the sandbox, the database, and the Slack and Discord tokens when they are set. Exits
    1 when any check fails."""
    from bot.config import load_config
    from bot.doctor import Check, run_checks
    from bot.errors import UserError

    try:
        config = load_config()
    except UserError as err:
        checks = [Check(False, "config file", str(err))]
    else:
        checks = _run(run_checks(config))
    for check in checks:
        click.echo(check.line())
    if not all(check.ok for check in checks):
        raise SystemExit(1)


@main.group("config")
def config_group() -> None:
    """Show the settings in effect."""


@config_group.command("show")
def config_show() -> None:
    """Print the settings in effect.

    One `name = value` line each, from the environment, the config file and the defaults;
    tokens and keys show only whether they are set."""
    from bot.config import config_file, load_config
    from bot.errors import UserError

    try:
        path, config = config_file(), load_config()
    except UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"# config file: {path if path else 'none'}")
    for line in _settings_lines(config, os.environ):
        click.echo(line)


def _settings_lines(config: Config, env: Mapping[str, str]) -> list[str]:
    """``name = value`` for every setting; a secret shows only whether it is set."""
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            lines.append(f"# {field.name} is not set")
        elif not field.repr:  # the tokens and secrets (repr=False keeps them out of logs too)
            lines.append(f'{field.name} = "********"  # set, hidden')
        elif field.name == "models":
            lines.extend(f"models.{spec.name}.ref = {json.dumps(spec.ref)}" for spec in value)
        elif isinstance(value, frozenset):
            lines.append(f"{field.name} = {json.dumps(sorted(value))}")
        elif isinstance(value, tuple):
            lines.append(f"{field.name} = {json.dumps(list(value))}")
        elif isinstance(value, bool):
            lines.append(f"{field.name} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{field.name} = {value!r}")
        elif field.name.endswith("_url") or (field.name == "db_path" and isinstance(value, str)):
            lines.append(f"{field.name} = {json.dumps(_safe_url(value))}")
        else:
            lines.append(f"{field.name} = {json.dumps(str(value))}")
    key = "set, hidden" if env.get("OPENAI_API_KEY") else "not set"
    lines.append(f"# OPENAI_API_KEY is {key}")
    base_url = env.get("OPENAI_BASE_URL")
    lines.append(
        f"# OPENAI_BASE_URL = {json.dumps(_safe_url(base_url))}"
        if base_url
        else "# OPENAI_BASE_URL is not set"
    )
    return lines


def _safe_url(url: str) -> str:
    """``url`` without what may hold a credential: a user:password and the query's values."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@main.command("eval")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    type=click.Choice(["humaneval", "codethread"]),
    help="Task suite; may be given twice (default: both).",
)
@click.option("--model", "-m", help="Model reference (default: CODETHREAD_MODEL or the default).")
@click.option(
    "--repair",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Fix rounds for a failing version, each judged again.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first K tasks of each suite.")
@click.option(
    "--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1), help="Tasks at once."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one JSON line per task and a summary line to this file.",
)
@click.option("--resume", is_flag=True, help="Continue the run in the --json file.")
@click.option("--reference", is_flag=True, help="Run the suites' reference solutions, no model.")
def eval_command(
    suites: tuple[str, ...],
    model: str | None,
    repair: int,
    limit: int | None,
    jobs: int,
    json_path: Path | None,
    resume: bool,
    reference: bool,
) -> None:
    """Measure how often the code works: single shot, and after Fix.

    Each task runs as a chat request would, in a throwaway database: the task's prompt (and
    adjust messages) make versions, the suite's own tests judge the latest in the sandbox, and
    with --repair N a failing version goes through Fix up to N times. Prints pass@1 with 95 %
    intervals, the lift of repair, tokens and time per suite. Exits 1 when some task got no
    verdict (the model could not be reached) or, with --reference, a reference failed."""
    from rich.console import Console

    from bot.config import load_config
    from bot.eval import EvalOptions, run_eval

    options = EvalOptions(
        suites=suites or ("humaneval", "codethread"),
        model=model,
        repair=repair,
        limit=limit,
        jobs=jobs,
        json_path=json_path,
        resume=resume,
        reference=reference,
    )
    status = _run(run_eval(options, load_config(), out=Console(), err=Console(stderr=True)))
    if status:
        raise SystemExit(status)


@main.group("sandbox")
def sandbox_group() -> None:
    """Prepare what snippets can use when they run."""


@sandbox_group.command("setup")
@click.option(
    "--find-links",
    "find_links",
    multiple=True,
    metavar="DIR",
    help="Also look for Python packages in this folder or page (pip --find-links); repeatable.",
)
@click.option("--no-index", is_flag=True, help="Only those: do not ask the package index.")
@click.option("--offline", is_flag=True, help="npm: use only its cache and local tarballs.")
def sandbox_setup(find_links: tuple[str, ...], no_index: bool, offline: bool) -> None:
    """Install the config's [sandbox] packages for every run.

    python_packages go into a venv of the system python3 (by pip), node_packages into a
    node_modules folder (by npm), both in the environment folder (environment_dir, else the
    data folder); runs see them read-only. A running bot uses the new set from its next run on.
    Prints each command, then what was installed."""
    from bot.config import load_config
    from bot.errors import UserError
    from sandbox import SetupError, prepare
    from sandbox.toolchains import resolve_program

    try:
        settings = load_config().sandbox
    except UserError as err:
        raise click.ClickException(str(err)) from None
    if not settings.python_packages and not settings.node_packages:
        click.echo(f"[sandbox] lists no python_packages or node_packages: {settings.directory} "
                   "now holds an empty environment.")  # fmt: skip
    python3 = resolve_program("python3")
    if python3 is None and settings.python_packages:
        raise click.ClickException("python3 is not installed under /usr (Debian: python3)")
    pip_options = [option for link in find_links for option in ("--find-links", link)]
    pip_options += ["--no-index"] if no_index else []
    try:
        environment = prepare(
            settings,
            python3=python3 or "python3",
            pip_options=pip_options,
            npm_options=["--offline"] if offline else [],
            log=lambda line: click.echo(line, err=True),
        )
    except (SetupError, OSError) as err:
        raise click.ClickException(str(err)) from None
    for label, packages in (
        ("Python", environment.python_packages),
        ("Node", environment.node_packages),
    ):
        if packages:
            listed = ", ".join(f"{name} {version}" for name, version in packages.items())
            click.echo(f"{label}: {listed}")
    click.echo(f"Ready: {settings.directory}")


@main.group("discord")
def discord_group() -> None:
    """Discord: publish the slash commands."""


@discord_group.command("sync")
@click.option(
    "--guild",
    type=int,
    metavar="ID",
    help="Publish to this server only, where they appear at once (to try a change).",
)
def discord_sync(guild: int | None) -> None:
    """Publish /code and /snippets to Discord (the bot does not do it at start-up).

    Run it after installing and after an upgrade that changes the commands. Logs in with
    DISCORD_BOT_TOKEN over REST only (no gateway connection), through DISCORD_API_URL when set.
    Prints how many commands were published."""
    import discord

    from bot.adapters.discord.adapter import sync_commands
    from bot.config import load_config
    from bot.errors import UserError
    from bot.present.words import PlatformRefused

    try:
        config = load_config()
    except UserError as err:
        raise click.ClickException(str(err)) from None
    if not config.discord_bot_token:
        raise click.ClickException("DISCORD_BOT_TOKEN is not set")
    try:
        count = _run(
            sync_commands(
                config.discord_bot_token,
                guild=guild,
                allow_dms=config.discord_allow_dms,
                api_url=config.discord_api_url,
            )
        )
    except discord.LoginFailure:
        raise click.ClickException("Discord rejected DISCORD_BOT_TOKEN") from None
    except (PlatformRefused, discord.HTTPException) as err:
        raise click.ClickException(f"Discord refused the commands: {err}") from None
    where = f"to server {guild}" if guild is not None else "globally"
    click.echo(f"Published {count} Discord command(s) {where}.")
