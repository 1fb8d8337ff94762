"""Scenario `overload`: sends at ten times the sustainable rate; what is accepted, what is
refused, how late the accepted ones are, and whether the server's memory stays flat.

Open loop, like real clients that do not slow down because the server is
slow: message i is sent at start + i / rate, from one of `--senders` users in
one room, whatever happened to the earlier ones (at most `--max-in-flight`
open at once; past that the load generator itself skips a send and counts it).
Three phases of `--duration` seconds: `--rate` (a rate the server sustains,
see `send`), `--factor` times it, and `--rate` again (recovery). Per phase:
sends accepted (200) and refused (503 with Retry-After: the appender's queue
is full), the latency of the accepted ones, and the server's RSS (summed over
a supervisor's workers) sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.client import TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.process import ServerWatch
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.send import join_all
from bench.stats import Outcomes

SAMPLE_EVERY_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, default=300.0, help="sustainable sends per second (default 300)"
    )
    parser.add_argument(
        "--factor", type=float, default=10.0, help="overload = rate x factor (default 10)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--senders", type=int, default=200, help="users sending (default 200)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=2000,
        help="sends open at once, at most (the load generator's own bound; default 2000)",
    )
    parser.add_argument("--setup-parallel", type=int, default=10)


@dataclass
class Phase:
    name: str
    rate: float
    outcomes: Outcomes = field(default_factory=Outcomes)
    skipped: int = 0
    rss_kb: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "rate": self.rate,
            "attempted": self.outcomes.total,
            "ok": self.outcomes.ok,
            "errors": dict(self.outcomes.errors),
            "skipped_by_client": self.skipped,
            "accepted_per_s": round(self.outcomes.ok / self.wall_s, 1) if self.wall_s else 0,
            "latency_ms": self.outcomes.latency().as_json(),
            "rss_kb": {
                "first": self.rss_kb[0] if self.rss_kb else None,
                "max": max(self.rss_kb) if self.rss_kb else None,
                "last": self.rss_kb[-1] if self.rss_kb else None,
            },
            "client_cpu_s": round(self.client_cpu_s, 2),
        }


async def _send_one(client: MatrixClient, room_id: str, n: int, outcomes: Outcomes) -> None:
    try:
        response = await client.send_message(room_id, f"overload {n}")
    except TRANSPORT_ERRORS as error:
        outcomes.record_exception(error)
        return
    outcomes.record(response)


async def run_phase(
    phase: Phase,
    clients: list[MatrixClient],
    room_id: str,
    duration_s: float,
    max_in_flight: int,
    watch: ServerWatch,
) -> None:
    in_flight: set[asyncio.Task[None]] = set()
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        while not stop_sampling.is_set():
            reading = watch.sample()
            if reading is not None:
                phase.rss_kb.append(reading.rss_kb)
            try:
                await asyncio.wait_for(stop_sampling.wait(), SAMPLE_EVERY_S)
            except TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    cpu_started = time.process_time()
    started = time.perf_counter()
    total = int(phase.rate * duration_s)
    for n in range(total):
        delay = started + n / phase.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            phase.skipped += 1
            continue
        task = asyncio.create_task(_send_one(clients[n % len(clients)], room_id, n, phase.outcomes))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)
    phase.wall_s = time.perf_counter() - started
    phase.client_cpu_s = time.process_time() - cpu_started
    stop_sampling.set()
    await sampler


def build_table(phases: list[Phase]) -> Table:
    table = Table(
        ["phase", "rate", "sent", "ok", "refused 503", "other", "ok/s", "p50 ms", "p99 ms",
         "RSS MiB first/max/last"]
    )  # fmt: skip
    for phase in phases:
        latency = phase.outcomes.latency()
        refused = phase.outcomes.errors.get("503", 0)
        other = phase.outcomes.error_count - refused
        rss = phase.rss_kb
        table.rows.append(
            [
                phase.name,
                format_number(phase.rate, 0),
                str(phase.outcomes.total),
                str(phase.outcomes.ok),
                str(refused),
                str(other + phase.skipped),
                format_number(phase.outcomes.ok / phase.wall_s if phase.wall_s else 0, 0),
                format_number(latency.p50_ms, 1),
                format_number(latency.p99_ms, 1),
                "/".join(str(kb // 1024) for kb in (rss[0], max(rss), rss[-1])) if rss else "-",
            ]
        )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    started_at = datetime.now(UTC)
    watch = ServerWatch(args.server_pid, None)
    phases = [
        Phase("sustainable", args.rate),
        Phase(f"x{args.factor:g}", args.rate * args.factor),
        Phase("recovery", args.rate),
    ]
    connections = args.max_in_flight + args.setup_parallel + 4
    async with Homeserver.connect(base_url, connections=connections) as server:
        owner = await server.register(prefix="bench_owner")
        room_id = await owner.create_room(preset="public_chat", name="bench overload")
        clients = await server.register_many(args.senders, parallel=args.setup_parallel)
        await join_all(clients, room_id, args.setup_parallel)
        for phase in phases:
            await run_phase(phase, clients, room_id, args.duration, args.max_in_flight, watch)
    notes = [
        "open loop: sends go out on schedule whatever the server answers; refused = 503"
        " with Retry-After (the appender's queue full); latencies are of accepted sends",
        "other = other errors plus sends the load generator skipped at --max-in-flight",
    ]
    return Report(
        scenario="overload",
        base_url=base_url,
        params={key: getattr(args, key) for key in ("rate", "factor", "duration", "senders")},
        results=[phase.as_json() for phase in phases],
        table=build_table(phases),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="overload",
    help="sends at ten times the sustainable rate: refusals, accepted latency, memory",
    add_arguments=add_arguments,
    run=run,
)
