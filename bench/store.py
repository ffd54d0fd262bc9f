"""Benchmark the store on SQLite and PostgreSQL, a million sessions. Prints figures; never asserts.

Run from the repository root: ``python -m bench.store`` (or ``python bench/store.py``).
``--backend sqlite|postgres|both`` (both), ``--sessions N`` and ``--versions-per-session M``
(the mean; issue 15's size is 1,000,000 and 5), ``--owners N`` (sessions / 100),
``--queries N``, ``--turns N``, ``--rounds N``, ``--seed N``; ``--postgres URL`` uses that
server's (empty, scratch) database instead of starting a throwaway one (tests/postgres.py,
Debian's PostgreSQL binaries), and empties it again at the end; ``--keep DIR`` leaves the
SQLite file in DIR and the ``--postgres`` database filled, to EXPLAIN queries on them.

Each backend is bulk-loaded with the same synthetic rows (bench/store_data.py: after the
store's own migrations made the schema, the search indexes kept as the store keeps them), and
then everything is measured through the real ``storage.Store``: listings (the goal:
``list_sessions(owner=, platform=, workspace=, limit=50)`` p99 <= 5 ms), single reads, search
for a rare and a common word (as the bot searches, scoped to one person's place, and over
everything), and ``--turns`` simultaneous turns, each doing what the session core asks of the
store for one message (find the session, read its versions, its pending failure and its files,
then append a version), all released at once, three times; then the same with what a durable
turn adds (delivery claimed, rate window counted, job added, claimed and finished). Every
measurement is repeated ``--rounds`` times on the loaded database and the table shows the
median of the rounds' p50s and p99s (and the p99s' range), as other work on the machine makes
single figures noisy; a search stops after 15 s of a round once it has 5 samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from bench.store_data import (
    COMMON_WORD,
    RARE_WORD,
    Dataset,
    Load,
    Shape,
    Summary,
    empty_postgres,
)
from storage import SessionKey, Store, StoreError

CODE = "def solve(items):\n    return sorted(set(items), key=str.lower)\n" * 4
LIST_GOAL_MS = 5.0
FULL_SESSIONS = 1_000_000  # issue 15's size, with 5 versions a session
# What fits the ~15 minutes a default run may take on two shared cores: loading SQLite's FTS5
# trigram index is most of it, 15 to 17 minutes alone at the full size.
DEFAULT_SESSIONS = 400_000
SEARCH_BUDGET_S = 15.0  # per search and round, see timed()
MIN_SAMPLES = 5

T = TypeVar("T")
Plan = list[tuple[str, Callable[[Any], Awaitable[object]], Sequence[Any]]]  # label, call, inputs


@dataclass(frozen=True)
class Figure:
    """One measurement's wall times (ms) in one round."""

    label: str
    ms: list[float]


async def timed(
    call: Callable[[T], Awaitable[object]], args: Iterable[T], *, budget_s: float | None = None
) -> list[float]:
    """Await ``call(arg)`` for each arg, one after another; each one's wall time in ms.

    With ``budget_s``, stop early once that many seconds went by and there are
    :data:`MIN_SAMPLES` (a search taking seconds would otherwise take the run's quarter hour).
    """
    out: list[float] = []
    began = time.perf_counter()
    for arg in args:
        spent = time.perf_counter() - began
        if budget_s is not None and len(out) >= MIN_SAMPLES and spent > budget_s:
            break
        start = time.perf_counter()
        await call(arg)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(
    store: Store, summary: Summary, rng: random.Random, args: argparse.Namespace, run: str
) -> list[Figure]:
    """One round of every measurement, on a loaded store. ``run`` makes delivery keys unique."""
    homes = summary.homes
    picks = rng.choices(sorted(homes), k=args.queries)
    ids = rng.choices(summary.with_versions, k=args.queries)
    tries = max(10, args.queries // 50)  # of each search (or fewer: SEARCH_BUDGET_S)

    def at_home(**options: Any) -> Callable[[str], Awaitable[object]]:
        """``list_sessions`` scoped to an owner's home place, as the bot scopes its lists."""

        async def call(owner: str) -> object:
            platform, workspace = homes[owner]
            return await store.list_sessions(
                owner=owner, platform=platform, workspace=workspace, **options
            )

        return call

    def everywhere(**options: Any) -> Callable[[object], Awaitable[object]]:
        return lambda _: store.list_sessions(**options)

    async def add(session_id: int) -> object:
        return await store.add_version(
            session_id, request="again", code=CODE, note="", model="gpt-4o-mini",
            prompt_tokens=100, completion_tokens=200, latency_ms=900,
        )  # fmt: skip

    longest, most = summary.longest
    bot_list = {"limit": 25, "with_versions": True}  # what SessionService.list_sessions asks
    reads: Plan = [
        ("list_sessions(owner, platform, workspace, 50)", at_home(limit=50), picks),
        ("list_sessions(.., with_versions, 25) [the bot's]", at_home(**bot_list), picks),
        ("list_sessions(owner) [every place]", lambda o: store.list_sessions(owner=o), picks[:200]),
        ("list_sessions(slack, T01) [no owner]", everywhere(platform="slack", workspace="T01"),
         range(50)),
        ("list_sessions() [all, newest 50]", everywhere(), range(200)),
        ("get_session(id)", store.get_session, ids),
        ("list_versions(id)", store.list_versions, ids),
        (f"list_versions(id) [the longest, {most} versions]", store.list_versions, [longest] * 50),
        ("get_version(id) latest", store.get_version, ids),
    ]  # fmt: skip
    searches: Plan = [
        (f"search {RARE_WORD!r} (rare) [the bot's]", at_home(search=RARE_WORD, **bot_list),
         picks[:tries]),
        (f"search {COMMON_WORD!r} (common) [the bot's]", at_home(search=COMMON_WORD, **bot_list),
         picks[:tries]),
        (f"search {RARE_WORD!r} (rare) [everyone's, 50]", everywhere(search=RARE_WORD),
         range(tries)),
        (f"search {COMMON_WORD!r} (common) [everyone's, 50]", everywhere(search=COMMON_WORD),
         range(tries)),
    ]  # fmt: skip
    figures = [Figure(label, await timed(call, inputs)) for label, call, inputs in reads]
    for label, call, inputs in searches:
        figures.append(Figure(label, await timed(call, inputs, budget_s=SEARCH_BUDGET_S)))
    figures.append(Figure("add_version(id, ...) [one commit each]", await timed(add, ids)))
    picked = rng.sample(summary.with_versions, min(args.turns, len(summary.with_versions)))
    figures += await concurrent_turns(store, picked, rounds=3, run=run)
    figures += await concurrent_turns(store, picked, rounds=3, run=run, durable=True)
    return figures


async def concurrent_turns(
    store: Store, session_ids: list[int], *, rounds: int, run: str, durable: bool = False
) -> list[Figure]:
    """Release one turn per session at once, ``rounds`` times; each turn's and read's time.

    ``durable`` adds what a turn kept in the store costs around it: the delivery claimed, a
    rate window counted, the job added, claimed and finished (five more writes).
    """
    sessions = [await store.get_session(session_id) for session_id in session_ids]
    keys = [session.key for session in sessions if session is not None]
    turns: list[float] = []
    reads: list[float] = []
    deliveries = iter(range(10**9))

    async def read(call: Awaitable[T]) -> T:
        start = time.perf_counter()
        result = await call
        reads.append((time.perf_counter() - start) * 1000)
        return result

    async def turn(key: SessionKey) -> None:
        start = time.perf_counter()
        lane = f"{key.platform}:{key.workspace}:{key.channel}:{key.thread}"
        job = None
        if durable:
            delivery = f"bench-{run}-{next(deliveries)}"
            assert await store.claim_delivery(delivery)
            await store.rate_hit(f"user:{lane}", window=60, limit=1000)
            await store.add_job(delivery=delivery, lane=lane, kind="turn", payload={"t": "x"})
            job = await store.claim_job("bench", stale_after=60)
        session = await read(store.find_session(key))
        assert session is not None
        await read(store.list_versions(session.id))
        await read(store.latest_failure(session.id))
        await read(store.list_files(session.id))
        await store.add_version(
            session.id, request="again", code=CODE, note="", model="gpt-4o-mini",
            prompt_tokens=100, completion_tokens=200, latency_ms=900,
        )  # fmt: skip
        if job is not None:
            await store.finish_job(job.id)
        turns.append((time.perf_counter() - start) * 1000)

    for _ in range(rounds):
        await asyncio.gather(*(turn(key) for key in keys))
    label = f"{len(keys)} {'durable turns' if durable else 'turns'} at once"
    return [Figure(f"{label}: a turn's store time", turns), Figure(f"{label}: one read", reads)]


def table(summary: Summary, load: Load, rounds: list[list[Figure]]) -> None:
    """Print one backend's load and the median over ``rounds`` of each figure."""
    owners = len(summary.homes)
    print(
        f"\n{load.server}: {summary.sessions:,} sessions, {summary.versions:,} versions"
        f" ({RARE_WORD!r} in {summary.rare:,} requests, {COMMON_WORD!r} in {summary.common:,}),"
        f" {owners:,} owners\n  loaded in {load.total_s:.1f} s (rows {load.rows_s:.1f} s,"
        f" indexes and statistics {load.index_s:.1f} s); database {load.size_bytes / 1e9:.2f} GB"
    )
    print(f"  {'':<52}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}  {'p99 over rounds':<18}{'max ms':>9}")
    for row in zip(*rounds, strict=True):
        p50s = [statistics.median(figure.ms) for figure in row]
        p99s = [pct(figure.ms, 99) for figure in row]
        p99 = statistics.median(p99s)
        spread = f"{_ms(min(p99s))}-{_ms(max(p99s))}" if len(row) > 1 else ""
        n = min(len(figure.ms) for figure in row)
        line = f"  {row[0].label:<52}{n:>6}{statistics.median(p50s):>10.3f}"
        line += f"{p99:>10.3f}  {spread:<18}{max(max(f.ms) for f in row):>9.2f}"
        if row[0].label.startswith("list_sessions(owner, platform, workspace, 50)"):
            line += (
                f"  goal p99 <= {LIST_GOAL_MS:g} ms: {'met' if p99 <= LIST_GOAL_MS else 'NOT met'}"
            )
        print(line, flush=True)


def _ms(value: float) -> str:
    """Three significant figures, without an exponent."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


async def bench_sqlite(dataset: Dataset, args: argparse.Namespace) -> None:
    """Load a fresh file (in a temporary directory, or ``--keep``'s), measure."""
    with tempfile.TemporaryDirectory(prefix="codethread-bench-") as tmp:
        path = (args.keep or Path(tmp)) / "bench.db"
        if path.exists():
            raise SystemExit(f"{path} exists already; remove it or --keep another directory")
        await (await Store.open(path)).close()  # the schema, by the real migrations
        load = await asyncio.to_thread(dataset.load_sqlite, path)
        await rounds_on(path, dataset, load, args)


async def bench_postgres(dataset: Dataset, dsn: str, args: argparse.Namespace) -> None:
    """Load, measure; a database given by ``--postgres`` is emptied again afterwards (unless
    ``--keep``)."""
    store = await Store.open(dsn)  # the schema, by the real migrations
    try:
        if await store.list_sessions(limit=1):
            raise SystemExit("the --postgres database holds sessions; give an empty scratch one")
    finally:
        await store.close()
    try:
        load = await dataset.load_postgres(dsn)
        await rounds_on(dsn, dataset, load, args)
    finally:
        if args.postgres and not args.keep:
            await empty_postgres(dsn)


async def rounds_on(
    target: str | Path, dataset: Dataset, load: Load, args: argparse.Namespace
) -> None:
    """``--rounds`` rounds of :func:`measure` on the loaded ``target``, then its table."""
    rng = random.Random(args.seed)
    results = []
    async with await Store.open(target) as store:
        await store.list_sessions(limit=1)  # warm a connection
        for round_number in range(args.rounds):
            run = f"{os.getpid()}-{time.time_ns()}-{round_number}"
            results.append(await measure(store, dataset.summary, rng, args, run))
    table(dataset.summary, load, results)


@contextlib.contextmanager
def postgres_target(args: argparse.Namespace) -> Iterator[str | None]:
    """``--postgres``, or a throwaway server's URL; None (having said why) when there are no
    server binaries and SQLite was measured, an exit with that reason when it was not."""
    if args.postgres:
        yield args.postgres
        return
    from tests.postgres import find_bin, postgres_server

    bin_dir = find_bin()
    if bin_dir is None:
        why = "PostgreSQL: no server binaries (Debian's postgresql package); give --postgres URL"
        if args.backend == "postgres":
            raise SystemExit(why)
        print(why)
        yield None
        return
    with postgres_server(bin_dir) as dsn:
        yield dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
    parser.add_argument("--versions-per-session", type=float, default=5.0, help="the mean")
    parser.add_argument("--owners", type=int, help="default: sessions / 100")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", help="an empty scratch database to use")
    parser.add_argument(
        "--keep", metavar="DIR", type=Path,
        help="leave the SQLite file in DIR, and the --postgres database filled, to look into",
    )  # fmt: skip
    args = parser.parse_args()
    args.owners = args.owners or max(1, args.sessions // 100)
    if min(args.sessions, args.owners, args.queries, args.turns, args.rounds) < 1:
        parser.error("--sessions, --owners, --queries, --turns and --rounds take 1 or more")
    if args.versions_per_session < 1:
        parser.error("--versions-per-session takes 1 or more")
    if args.keep and not args.keep.is_dir():
        parser.error(f"--keep {args.keep}: no such directory")
    if args.postgres and not args.postgres.startswith(("postgresql://", "postgres://")):
        parser.error("--postgres takes a postgresql:// URL")
    size = f"{args.sessions:,} sessions, {args.versions_per_session:g} versions each on average"
    if args.sessions < FULL_SESSIONS:
        size += (
            f", smaller than issue 15's {FULL_SESSIONS:,} and 5 to fit a quarter hour (the"
            f" full size takes about 25 minutes on two cores: --sessions {FULL_SESSIONS})"
        )
    print(f"bench/store, {args.backend}: {size}; medians of {args.rounds} rounds", flush=True)
    dataset = Dataset(
        Shape(sessions=args.sessions, owners=args.owners,
              versions_per_session=args.versions_per_session, seed=args.seed)
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        if args.backend in ("sqlite", "both"):
            asyncio.run(bench_sqlite(dataset, args))
        if args.backend in ("postgres", "both"):
            with postgres_target(args) as dsn:  # started only now, not idle through SQLite's
                if dsn is not None:
                    try:
                        asyncio.run(bench_postgres(dataset, dsn, args))
                    except StoreError as err:  # e.g. a --postgres server that refuses
                        raise SystemExit(f"PostgreSQL: {err}") from None


if __name__ == "__main__":
    main()
