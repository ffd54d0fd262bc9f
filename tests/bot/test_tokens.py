"""API tokens: :mod:`bot.tokens` against a real store (both backends), and the ``codethread
tokens`` commands in a subprocess, as a user runs them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.tokens import PREFIX, hash_token, issue, looks_like_token, new_token, verify
from storage import Store, StoreError, open_store
from tests.bot.conftest import both_backends
from tests.storage.conftest import FakeClock

ROOT = Path(__file__).resolve().parents[2]

db_target = pytest.fixture(params=["sqlite", "postgres"])(both_backends)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(db_target: Path | str, clock: FakeClock) -> AsyncIterator[Store]:
    async with await open_store(db_target, clock=clock) as store:
        yield store


# -- bot.tokens ------------------------------------------------------------------------------


def test_a_token_is_256_random_bits_behind_a_prefix() -> None:
    made = {new_token() for _ in range(100)}

    assert len(made) == 100
    for text in made:
        assert text.startswith(PREFIX) and len(text) == 46 and looks_like_token(text)
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    for bad in (
        "",
        "ct_",
        "ct_short",
        "xx_" + "a" * 43,
        PREFIX + "a" * 44,
        PREFIX + "a" * 42 + "!",
    ):
        assert not looks_like_token(bad), bad


async def test_an_issued_token_verifies_until_revoked(store: Store, clock: FakeClock) -> None:
    text, token = await issue(store, "  alice ", days=None, label=" laptop ")

    assert (token.user, token.label, token.expires_at) == ("alice", "laptop", None)
    assert looks_like_token(text)
    found = await verify(store, text)
    assert found is not None and (found.id, found.user, found.last_used_at) == (
        token.id, "alice", clock.now,
    )  # fmt: skip
    assert await verify(store, text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    assert await verify(store, text + " ") is None
    other, _ = await issue(store, "alice", days=None)
    assert other != text

    assert await store.revoke_token(token.id) is True
    assert await verify(store, text) is None
    assert await verify(store, other) is not None


async def test_a_token_lives_the_days_it_was_given(store: Store, clock: FakeClock) -> None:
    text, token = await issue(store, "alice", days=1.5, clock=clock)

    assert token.expires_at == clock.now + 1.5 * 86400
    clock.advance(1.5 * 86400 - 1)
    assert await verify(store, text) is not None
    clock.advance(1)
    assert await verify(store, text) is None


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf")])
async def test_a_lifetime_must_be_a_number_of_days_above_0(store: Store, days: float) -> None:
    with pytest.raises(ValueError, match="above 0"):
        await issue(store, "alice", days=days)
    assert await store.list_tokens() == []


async def test_a_token_needs_a_user(store: Store) -> None:
    with pytest.raises(ValueError, match="needs a user"):
        await issue(store, " ", days=None)


async def test_malformed_text_is_refused_without_the_store(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "ct.db")
    await store.close()  # any query now raises StoreError

    for text in ("", "Bearer x", "ct_" + "a" * 10_000, "ct_" + "a" * 42 + "\n"):
        assert await verify(store, text) is None
    with pytest.raises(StoreError):
        await verify(store, new_token())  # a well-formed one does ask


# -- codethread tokens -----------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(home: Path, db_target: Path | str) -> Cli:
    """``await cli(*args)``: ``python -m bot ARGS`` on the test's database."""

    async def run(*args: str) -> Result:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "USER": "alice",
            "CODETHREAD_DB": str(db_target),
            "CODETHREAD_MODEL": "openai:test-model",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "NO_PROXY": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


def files_holding(folder: Path, data: bytes) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and data in path.read_bytes()]


def one_line_error(result: Result, text: str) -> None:
    assert result.code != 0, result
    assert text in result.err, result.err
    assert "Traceback" not in result.err


async def test_create_prints_the_token_once_and_keeps_only_its_hash(
    cli: Cli, db_target: Path | str, home: Path, tmp_path: Path
) -> None:
    made = await cli("tokens", "create", "--user", "bob", "--expires", "30", "--label", "ci")

    assert made.code == 0, made.err
    text = made.out.strip()
    assert made.out == text + "\n" and looks_like_token(text)  # stdout: the token alone
    assert "Token 1 for bob, expires " in made.err and "cannot be shown again" in made.err
    async with await open_store(db_target) as store:
        token = await verify(store, text)
    assert token is not None and (token.user, token.label) == ("bob", "ci")
    secret = text[len(PREFIX) :].encode()
    assert await asyncio.to_thread(files_holding, tmp_path, secret) == []  # database, logs
    listed = await cli("tokens", "list")
    assert text not in listed.out and hash_token(text) not in listed.out


async def test_list_shows_every_token_newest_first(cli: Cli) -> None:
    assert (await cli("tokens", "list")).out.startswith("No tokens yet.")
    for user, label in (("alice", "laptop"), ("bob", "")):
        assert (await cli("tokens", "create", "--user", user, "--label", label)).code == 0
    assert (await cli("tokens", "revoke", "1")).code == 0

    table = await cli("tokens", "list")
    as_json = await cli("tokens", "list", "--json")

    assert table.code == 0, table.err
    header, bob, alice = table.out.splitlines()
    assert header.split()[:3] == ["id", "user", "created"] and "last used" in header
    assert bob.split()[:2] == ["2", "bob"] and bob.count("never") == 2
    assert alice.split()[:2] == ["1", "alice"] and alice.endswith("laptop")
    rows = json.loads(as_json.out)
    assert [(r["id"], r["user"], r["label"]) for r in rows] == [
        (2, "bob", ""),
        (1, "alice", "laptop"),
    ]
    assert set(rows[0]) == {
        "id", "user", "label", "created_at", "expires_at", "last_used_at", "revoked_at",
    }  # fmt: skip
    assert rows[0]["revoked_at"] is None and rows[1]["revoked_at"] is not None
    assert rows[1]["expires_at"] is None


async def test_revoke_refuses_the_token_and_says_so(cli: Cli, db_target: Path | str) -> None:
    text = (await cli("tokens", "create", "--user", "alice")).out.strip()

    revoked = await cli("tokens", "revoke", "1")

    assert (revoked.code, revoked.out) == (0, "Revoked token 1.\n")
    async with await open_store(db_target) as store:
        assert await verify(store, text) is None
    one_line_error(await cli("tokens", "revoke", "7"), "No token with id 7")
    assert len((await cli("tokens", "revoke", "7")).err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--user", "alice", "--expires", "0"), "is not in the range x>0"),
        (("--user", "alice", "--expires", "soon"), "is not a valid float"),
        (("--user", "  "), "A token needs a user"),
        ((), "Missing option '--user'"),
    ],
)
async def test_create_refuses_bad_input_in_one_line(
    cli: Cli, args: tuple[str, ...], says: str
) -> None:
    refused = await cli("tokens", "create", *args)

    one_line_error(refused, says)
    assert refused.code == 2 and refused.out == ""
