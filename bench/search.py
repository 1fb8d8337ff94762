"""Scenario `search`: POST /search latency over a large index of messages.

Setup: `--authors` users create `--rooms` rooms (three authors in each) and a
searcher joins `--member-rooms` of them. Then `--messages` messages (words
drawn from a Zipf-distributed synthetic vocabulary, `--seed` makes it
repeatable) are appended straight through the server's own appender by
`bench/search_fill.py`, run with the server's interpreter against the
server's database, in batches of a thousand: over HTTP, one request per
message, 200,000 messages would take minutes. That is the only part of a
bench that touches the server's code; the measurement is HTTP only.

Measured: `--queries` searches one after another by the searcher, for each
order asked (`--order`), as Element sends them (limit 10, with event context
1 before and 1 after and the senders' profiles; `--no-context` leaves it
out). Query terms come in classes by how often their words occur:

- typical: one word of frequency rank 50-2000 (in about 2% to 0.05% of messages)
- two words: two typical words
- rare: one word of rank 5000 or below
- common: one word of rank 10-30 (in 3% to 10% of messages: what the english
  stop-word list leaves of real text is rarely this frequent); reported apart.

The p95 over the first three classes together is the figure to hold to 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.client import CLIENT_V3, TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.spawn import DEFAULT_SERVER_DIR
from bench.stats import LatencySummary, Outcomes

_SYLLABLES = (
    "ka lo mi tu ra ne so vi da pe zu ro ba li qua fen dor til mar sen "
    "gu ho je ky wo xa ze pi nu ca"
).split()
CLASSES = ("typical", "two words", "rare", "common")
TARGET_CLASSES = ("typical", "two words", "rare")
SEARCH_TIMEOUT_S = 60.0


def vocabulary(size: int, seed: int) -> list[str]:
    """`size` distinct made-up words, most frequent first (same for the same seed)."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def zipf_weights(size: int, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for random.choices(cum_weights=...)."""
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, size + 1)))


def message_bodies(count: int, words: Sequence[str], seed: int) -> list[str]:
    """`count` messages of 4-16 words drawn by frequency rank."""
    rng = random.Random(seed + 1)
    weights = zipf_weights(len(words))
    return [
        " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(4, 16)))
        for _ in range(count)
    ]


def query_terms(words: Sequence[str], count: int, seed: int) -> list[tuple[str, str]]:
    """(class, term) pairs, classes in turn."""
    rng = random.Random(seed + 2)
    top = len(words) - 1
    typical = words[50 : min(2000, top)]
    rare = words[min(5000, top // 2) :]
    common = words[10:30]
    makers = {
        "typical": lambda: rng.choice(typical),
        "two words": lambda: f"{rng.choice(typical)} {rng.choice(typical)}",
        "rare": lambda: rng.choice(rare),
        "common": lambda: rng.choice(common),
    }
    return [(CLASSES[i % len(CLASSES)], makers[CLASSES[i % len(CLASSES)]]()) for i in range(count)]


@dataclass(frozen=True)
class SearchOptions:
    messages: int
    rooms: int
    member_rooms: int
    authors: int
    queries: int
    orders: tuple[str, ...]
    context: bool
    vocabulary: int
    seed: int
    server_config_file: str | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SearchOptions:
        rooms = max(1, int(args.rooms))
        return cls(
            messages=max(0, int(args.messages)),
            rooms=rooms,
            member_rooms=min(rooms, max(1, int(args.member_rooms))),
            authors=max(3, int(args.authors)),
            queries=max(1, int(args.queries)),
            orders=tuple(args.order.split(",")),
            context=not args.no_context,
            vocabulary=max(100, int(args.vocabulary)),
            seed=int(args.seed),
            server_config_file=args.server_config_file,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=200_000, help="messages indexed (default 200000)"
    )
    parser.add_argument("--rooms", type=int, default=100, help="rooms in all (default 100)")
    parser.add_argument(
        "--member-rooms", type=int, default=50, help="rooms the searcher is in (default 50)"
    )
    parser.add_argument("--authors", type=int, default=10, help="users who write (default 10)")
    parser.add_argument(
        "--queries", type=int, default=200, help="searches measured per order (default 200)"
    )
    parser.add_argument(
        "--order", default="recent,rank", help="orders measured, comma-separated (recent,rank)"
    )
    parser.add_argument("--no-context", action="store_true", help="search without event_context")
    parser.add_argument(
        "--vocabulary", type=int, default=20_000, help="distinct words (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="vocabulary and messages seed")
    parser.add_argument(
        "--server-config-file",
        default=None,
        metavar="FILE",
        help="the server's config file, for the filler to reach its database and key "
        "(default: read from the --server-pid process's command line)",
    )


def _server_config_file(options: SearchOptions, server_pid: int | None) -> str:
    if options.server_config_file:
        return options.server_config_file
    if server_pid is None:
        raise SystemExit("search: give --server-config-file, or --spawn-server / --server-pid")
    with open(f"/proc/{server_pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read().decode().split("\0")
    if "--config" not in argv:
        raise SystemExit(f"search: process {server_pid} was not started with --config")
    return argv[argv.index("--config") + 1]


def _interpreter(args: argparse.Namespace) -> str:
    """The server's interpreter: the filler imports the server's code."""
    python = args.server_python or str(Path(args.server_dir) / ".venv" / "bin" / "python")
    return python if Path(python).exists() else sys.executable


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def _setup(
    server: Homeserver, options: SearchOptions
) -> tuple[MatrixClient, list[tuple[str, list[str]]]]:
    """The searcher, and each room with the authors joined to it."""
    authors = await server.register_many(options.authors, prefix="bench_author")
    searcher = await server.register(prefix="bench_searcher")
    rooms: list[tuple[str, list[str]]] = []
    gate = asyncio.Semaphore(8)

    async def room(index: int) -> tuple[str, list[str]]:
        async with gate:
            members = [authors[(index + k) % len(authors)] for k in range(3)]
            room_id = await members[0].create_room(preset="public_chat", name=f"bench {index}")
            for member in members[1:]:
                await member.join(room_id)
            if index < options.member_rooms:
                await searcher.join(room_id)
            return room_id, [member.user_id for member in members]

    rooms = list(await asyncio.gather(*(room(index) for index in range(options.rooms))))
    return searcher, rooms


async def _fill(
    options: SearchOptions, config_file: str, rooms: list[tuple[str, list[str]]], python: str
) -> float:
    """Run bench/search_fill.py with the server's interpreter; its wall time in seconds."""
    plan = {
        "rooms": [{"room_id": room_id, "senders": senders} for room_id, senders in rooms],
        "messages": options.messages,
        "vocabulary": options.vocabulary,
        "seed": options.seed,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(plan, handle)
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "bench.search_fill",
        "--config",
        config_file,
        "--plan",
        handle.name,
        cwd=str(DEFAULT_SERVER_DIR),
    )
    code = await process.wait()
    _remove(handle.name)
    if code != 0:
        raise SystemExit(f"search: the filler failed (exit {code})")
    return time.perf_counter() - started


def _criteria(term: str, order: str, context: bool) -> dict[str, Any]:
    criteria: dict[str, Any] = {"search_term": term, "order_by": order, "filter": {"limit": 10}}
    if context:
        criteria["event_context"] = {"before_limit": 1, "after_limit": 1, "include_profile": True}
    return criteria


Measured = dict[tuple[str, str], Outcomes]


async def _measure(
    searcher: MatrixClient, terms: list[tuple[str, str]], orders: Sequence[str], context: bool
) -> tuple[Measured, dict[tuple[str, str], list[int]]]:
    """Each term searched in each order in turn, so load from elsewhere on the
    machine falls on every order alike; outcomes and counts by (order, class)."""
    outcomes: Measured = {(o, name): Outcomes() for o in orders for name in CLASSES}
    counts: dict[tuple[str, str], list[int]] = {slot: [] for slot in outcomes}
    for name, term in terms:
        for order in orders:
            body = {"search_categories": {"room_events": _criteria(term, order, context)}}
            try:
                response = await searcher.request(
                    "POST", f"{CLIENT_V3}/search", json_body=body, request_timeout=SEARCH_TIMEOUT_S
                )
            except TRANSPORT_ERRORS as error:
                outcomes[order, name].record_exception(error)
                continue
            outcomes[order, name].record(response)
            if response.ok:
                found = response.body["search_categories"]["room_events"]["count"]
                counts[order, name].append(int(found))
    return outcomes, counts


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = SearchOptions.from_args(args)
    config_file = _server_config_file(options, args.server_pid)
    python = _interpreter(args)
    async with Homeserver.connect(base_url, connections=10, request_timeout=120) as server:
        started = time.perf_counter()
        searcher, rooms = await _setup(server, options)
        setup_s = time.perf_counter() - started
        fill_s = await _fill(options, config_file, rooms, python)
        words = vocabulary(options.vocabulary, options.seed)
        terms = query_terms(words, options.queries, options.seed)
        # Warm up: connections, caches, prepared statements.
        await _measure(searcher, terms[:8], options.orders, options.context)
        results: list[dict[str, Any]] = []
        table = Table(
            [
                "order",
                "class",
                "queries",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "count~",
                "errors",
            ]
        )
        measured, counted = await _measure(searcher, terms, options.orders, options.context)
        for order in options.orders:
            target = Outcomes()
            for name in TARGET_CLASSES:
                target.merge(measured[order, name])
            rows = [(name, measured[order, name], counted[order, name]) for name in CLASSES]
            rows.append(
                (
                    "typical+two+rare",
                    target,
                    [c for n in TARGET_CLASSES for c in counted[order, n]],
                )
            )
            for name, outcome, found in rows:
                latency: LatencySummary = outcome.latency()
                mean_count = sum(found) / len(found) if found else 0.0
                table.rows.append(
                    [
                        order,
                        name,
                        str(outcome.total),
                        format_number(latency.p50_ms),
                        format_number(latency.p95_ms),
                        format_number(latency.p99_ms),
                        format_number(latency.max_ms),
                        format_number(mean_count, 0),
                        str(outcome.error_count),
                    ]
                )
                results.append(
                    {
                        "order": order,
                        "class": name,
                        "latency_ms": latency.as_json(),
                        "mean_count": mean_count,
                        "errors": dict(outcome.errors),
                        "error_examples": outcome.examples,
                    }
                )
    notes = [
        f"setup {setup_s:.1f} s (users, rooms, joins over HTTP); "
        f"fill {fill_s:.1f} s ({options.messages} messages through the appender, "
        f"{options.messages / fill_s if fill_s else 0:.0f}/s)",
        f"searcher in {options.member_rooms} of {options.rooms} rooms; "
        f"event_context {'on' if options.context else 'off'}; count~ = mean `count` answered",
    ]
    return Report(
        scenario="search",
        base_url=base_url,
        params=asdict(options),
        results=results,
        table=table,
        notes=notes,
    )


SCENARIO = Scenario(
    name="search",
    help="POST /search latency over a large message index (fills it through the appender)",
    add_arguments=add_arguments,
    run=run,
)
