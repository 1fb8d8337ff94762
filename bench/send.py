"""Scenario `send`: message send throughput and latency under concurrent senders.

One owner creates a `public_chat` room. For each concurrency level N (from
`--senders`, default 1,10,100), N fresh users register and join it, send a
few warm-up messages, then all N send their share of messages at once, each
sequentially and as fast as the server answers. Measured per level: messages
accepted per second of wall time, latency of each accepted send, and failures
counted by HTTP status.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bench.client import TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.stats import Outcomes, throughput

DEFAULT_LEVELS = "1,10,100"
# 2000 messages per level: enough samples for a stable p99. Measured on a
# shared 2-core box (2026-11, early server): 2-5 s at 10 and 100 senders,
# 8-16 s for a single sender (130-240 msg/s); use --duration to fix the time.
DEFAULT_TOTAL_MESSAGES = 2000
MIN_MESSAGES_PER_SENDER = 20


def parse_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,10,100, not {text!r}") from None
    if not levels or any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError(f"levels must be positive integers, not {text!r}")
    return levels


@dataclass(frozen=True)
class SendOptions:
    levels: tuple[int, ...]
    messages_per_sender: int | None
    total_messages: int
    warmup: int
    setup_parallel: int
    duration_s: float | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SendOptions:
        return cls(
            levels=tuple(args.senders),
            messages_per_sender=args.messages_per_sender,
            total_messages=int(args.total_messages),
            warmup=int(args.warmup),
            setup_parallel=int(args.setup_parallel),
            duration_s=None if args.duration is None else float(args.duration),
        )

    def per_sender(self, senders: int) -> int:
        """Messages each sender sends at this level."""
        if self.messages_per_sender is not None:
            return self.messages_per_sender
        return max(MIN_MESSAGES_PER_SENDER, math.ceil(self.total_messages / senders))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--senders",
        type=parse_levels,
        default=parse_levels(DEFAULT_LEVELS),
        metavar="N,N,...",
        help=f"concurrency levels, one run each (default {DEFAULT_LEVELS})",
    )
    parser.add_argument(
        "--messages-per-sender",
        type=int,
        default=None,
        metavar="M",
        help=(
            "messages each sender sends per level (default: --total-messages / senders, "
            f"at least {MIN_MESSAGES_PER_SENDER})"
        ),
    )
    parser.add_argument(
        "--total-messages",
        type=int,
        default=DEFAULT_TOTAL_MESSAGES,
        metavar="T",
        help=f"messages per level when --messages-per-sender is not given "
        f"(default {DEFAULT_TOTAL_MESSAGES})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        metavar="W",
        help="unmeasured messages each sender sends before a level starts (default 3)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="instead of a message count, send for this long at each level",
    )
    parser.add_argument(
        "--setup-parallel",
        type=int,
        default=10,
        metavar="P",
        help="registrations and joins in flight at once during setup (default 10)",
    )


async def send_sequentially(
    client: MatrixClient, room_id: str, count: int, label: str, deadline: float | None = None
) -> Outcomes:
    """Send `count` messages one after another, recording each outcome.

    With a `deadline` (a `time.perf_counter()` value) the count is ignored and
    the sender keeps going until the deadline passes.
    """
    outcomes = Outcomes()
    index = 0
    while (index < count) if deadline is None else (time.perf_counter() < deadline):
        index += 1
        try:
            response = await client.send_message(
                room_id, f"{label} {index} from {client.localpart}"
            )
        except TRANSPORT_ERRORS as error:
            outcomes.record_exception(error)
            continue
        outcomes.record(response)
    return outcomes


async def join_all(clients: list[MatrixClient], room_id: str, parallel: int) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(client: MatrixClient) -> None:
        async with gate:
            await client.join(room_id)

    await asyncio.gather(*(one(client) for client in clients))


@dataclass
class LevelResult:
    senders: int
    messages_per_sender: int
    measured: Outcomes
    wall_s: float
    setup_s: float
    warmup: Outcomes
    # CPU this benchmark process used while measuring: near wall_s times one
    # core means the client, not the server, may be the bottleneck.
    client_cpu_s: float

    @property
    def messages_per_s(self) -> float:
        return throughput(self.measured.ok, self.wall_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "senders": self.senders,
            "messages_per_sender": self.messages_per_sender,
            "attempted": self.measured.total,
            "ok": self.measured.ok,
            "errors": dict(self.measured.errors),
            "error_examples": self.measured.examples,
            "wall_s": round(self.wall_s, 3),
            "messages_per_s": round(self.messages_per_s, 1),
            "latency_ms": self.measured.latency().as_json(),
            "setup_s": round(self.setup_s, 3),
            "warmup_errors": dict(self.warmup.errors),
            "client_cpu_s": round(self.client_cpu_s, 3),
        }


async def run_level(
    server: Homeserver, room_id: str, senders: int, options: SendOptions
) -> LevelResult:
    setup_started = time.perf_counter()
    clients = await server.register_many(senders, parallel=options.setup_parallel)
    await join_all(clients, room_id, options.setup_parallel)
    setup_s = time.perf_counter() - setup_started

    warmup = Outcomes()
    if options.warmup > 0:
        for outcome in await asyncio.gather(
            *(send_sequentially(c, room_id, options.warmup, "warmup") for c in clients)
        ):
            warmup.merge(outcome)

    per_sender = options.per_sender(senders)
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = None if options.duration_s is None else started + options.duration_s
    per_client = await asyncio.gather(
        *(send_sequentially(c, room_id, per_sender, "bench", deadline) for c in clients)
    )
    wall_s = time.perf_counter() - started
    client_cpu_s = time.process_time() - cpu_started

    measured = Outcomes()
    for outcome in per_client:
        measured.merge(outcome)
    if deadline is not None:
        per_sender = math.ceil(measured.total / senders)
    return LevelResult(senders, per_sender, measured, wall_s, setup_s, warmup, client_cpu_s)


def _errors_cell(errors: Counter[str]) -> str:
    if not errors:
        return "0"
    return " ".join(f"{cause}x{count}" for cause, count in sorted(errors.items()))


def build_table(results: list[LevelResult]) -> Table:
    table = Table(
        [
            "senders",
            "msgs",
            "ok",
            "errors",
            "wall s",
            "msg/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "client cpu",
        ]
    )
    for result in results:
        latency = result.measured.latency()
        table.rows.append(
            [
                str(result.senders),
                str(result.measured.total),
                str(result.measured.ok),
                _errors_cell(result.measured.errors),
                format_number(result.wall_s, 2),
                format_number(result.messages_per_s, 1),
                format_number(latency.p50_ms, 1),
                format_number(latency.p95_ms, 1),
                format_number(latency.p99_ms, 1),
                f"{result.client_cpu_s / result.wall_s:.0%}" if result.wall_s > 0 else "-",
            ]
        )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = SendOptions.from_args(args)
    started_at = datetime.now(UTC)
    # Every sender has one request in flight; a few spare sockets for setup.
    connections = max(max(options.levels), options.setup_parallel) + 4
    results: list[LevelResult] = []
    notes = [
        "msg/s counts accepted (200) sends over the level's wall time; "
        "latencies are of accepted sends; client cpu is this process's CPU time "
        "over wall time (near 100% means the client may be the bottleneck)."
    ]
    async with Homeserver.connect(base_url, connections=connections) as server:
        owner = await server.register(prefix="bench_owner")
        room_id = await owner.create_room(preset="public_chat", name="bench send throughput")
        for senders in options.levels:
            result = await run_level(server, room_id, senders, options)
            results.append(result)
            notes.extend(
                f"senders={senders}: first {cause}: {example}"
                for cause, example in result.measured.examples.items()
            )
            if result.warmup.errors:
                notes.append(f"senders={senders}: warm-up errors {dict(result.warmup.errors)}")
    return Report(
        scenario="send",
        base_url=base_url,
        params={**asdict(options), "room_id": room_id},
        results=[result.as_json() for result in results],
        table=build_table(results),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="send",
    help="message send throughput and latency at several sender counts",
    add_arguments=add_arguments,
    run=run,
)
