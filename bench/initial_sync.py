"""Scenario `initial_sync`: a client's first /sync for a user with many busy rooms.

One user creates `--rooms` rooms and sends `--messages` messages into each,
then asks for an initial sync (no `since`, no filter, `timeout=0`) `--repeats`
times, one after another. Measured: each sync's time until its body was read,
and the body's size. The first sync may pay for cold caches on the server;
its time is also reported on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bench.client import CLIENT_V3, TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.process import ServerWatch
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.stats import LatencySummary, Outcomes

# An initial sync of a big account may take a while; don't cut it short.
SYNC_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class InitialSyncOptions:
    rooms: int
    messages: int
    repeats: int
    setup_parallel: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InitialSyncOptions:
        return cls(
            rooms=max(1, int(args.rooms)),
            messages=max(0, int(args.messages)),
            repeats=max(1, int(args.repeats)),
            setup_parallel=int(args.setup_parallel),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=100, help="rooms the user is in (default 100)")
    parser.add_argument(
        "--messages", type=int, default=50, help="messages sent into each room (default 50)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="initial syncs measured, in a row (default 5)"
    )
    parser.add_argument(
        "--setup-parallel",
        type=int,
        default=8,
        metavar="P",
        help="rooms created and filled at once during setup (default 8)",
    )


async def fill_rooms(user: MatrixClient, options: InitialSyncOptions) -> tuple[list[str], Outcomes]:
    """Create the rooms and send their messages, `setup_parallel` rooms at a time."""
    gate = asyncio.Semaphore(options.setup_parallel)
    sends = Outcomes()

    async def one(index: int) -> str:
        async with gate:
            room_id = await user.create_room(preset="private_chat", name=f"bench room {index}")
            for number in range(options.messages):
                try:
                    response = await user.send_message(room_id, f"message {number} in {index}")
                except TRANSPORT_ERRORS as error:
                    sends.record_exception(error)
                    continue
                sends.record(response)
            return room_id

    room_ids = await asyncio.gather(*(one(index) for index in range(options.rooms)))
    return list(room_ids), sends


@dataclass
class SyncSample:
    status: int
    elapsed_s: float
    size_bytes: int
    rooms: int
    timeline_events: int
    state_events: int
    error: str | None
    # The server process's CPU time during the request (None: its pid is unknown).
    server_cpu_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ms": round(self.elapsed_s * 1000, 1),
            "server_cpu_ms": (
                round(self.server_cpu_s * 1000, 2) if self.server_cpu_s is not None else None
            ),
            "bytes": self.size_bytes,
            "joined_rooms": self.rooms,
            "timeline_events": self.timeline_events,
            "state_events": self.state_events,
            "error": self.error,
        }


async def measured_sync(server: Homeserver, user: MatrixClient, watch: ServerWatch) -> SyncSample:
    """An initial sync, with the server's CPU time while it was answered (it does nothing
    else meanwhile, so that is the sync's cost, without the client's share of the core)."""
    before = watch.sample()
    sample = await initial_sync(server, user)
    after = watch.sample()
    if before is not None and after is not None:
        sample.server_cpu_s = after.cpu_s - before.cpu_s
    return sample


async def initial_sync(server: Homeserver, user: MatrixClient) -> SyncSample:
    try:
        status, raw, elapsed = await server.request_bytes(
            "GET", f"{CLIENT_V3}/sync", token=user.access_token, params={"timeout": "0"}
        )
    except TRANSPORT_ERRORS as error:
        return SyncSample(0, 0.0, 0, 0, 0, 0, f"{type(error).__name__}: {error}")
    if status != 200:
        return SyncSample(status, elapsed, len(raw), 0, 0, 0, raw[:500].decode(errors="replace"))
    body = json.loads(raw)
    joined = (body.get("rooms") or {}).get("join") or {}
    timeline = sum(
        len((room.get("timeline") or {}).get("events") or []) for room in joined.values()
    )
    state = sum(len((room.get("state") or {}).get("events") or []) for room in joined.values())
    return SyncSample(status, elapsed, len(raw), len(joined), timeline, state, None)


def build_table(options: InitialSyncOptions, samples: list[SyncSample]) -> Table:
    ok = [s for s in samples if s.error is None]
    latency = LatencySummary.from_seconds(s.elapsed_s for s in ok)
    sizes = [s.size_bytes for s in ok]
    cpu = [s.server_cpu_s for s in ok if s.server_cpu_s is not None]
    table = Table(
        [
            "rooms",
            "msgs/room",
            "syncs",
            "errors",
            "first ms",
            "p50 ms",
            "max ms",
            "server cpu ms/sync",
            "KiB",
            "rooms seen",
            "timeline",
            "state",
        ]
    )
    table.rows.append(
        [
            str(options.rooms),
            str(options.messages),
            str(len(samples)),
            str(len(samples) - len(ok)),
            format_number(samples[0].elapsed_s * 1000 if samples[0].error is None else None, 1),
            format_number(latency.p50_ms, 1),
            format_number(latency.max_ms, 1),
            format_number(sum(cpu) / len(cpu) * 1000 if cpu else None, 2),
            format_number(max(sizes) / 1024 if sizes else None, 1),
            str(ok[-1].rooms) if ok else "-",
            str(ok[-1].timeline_events) if ok else "-",
            str(ok[-1].state_events) if ok else "-",
        ]
    )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = InitialSyncOptions.from_args(args)
    started_at = datetime.now(UTC)
    connections = options.setup_parallel + 4
    watch = ServerWatch(args.server_pid, None)
    async with Homeserver.connect(
        base_url, connections=connections, request_timeout=SYNC_TIMEOUT_S
    ) as server:
        setup_started = time.perf_counter()
        user = await server.register(prefix="bench_reader")
        room_ids, sends = await fill_rooms(user, options)
        setup_s = time.perf_counter() - setup_started
        samples = [await measured_sync(server, user, watch) for _ in range(options.repeats)]

    ok = [s for s in samples if s.error is None]
    latency = LatencySummary.from_seconds(s.elapsed_s for s in ok)
    notes = [
        f"setup {setup_s:.1f} s: {len(room_ids)} rooms, {sends.ok} messages accepted, "
        f"{sends.error_count} send errors {dict(sends.errors) or ''}".rstrip(),
        "each sync: GET /sync?timeout=0, no since, no filter (the server's default timeline "
        "limit); ms until the body was read; server cpu: the server process's CPU time "
        "during each sync, read from /proc in clock ticks (10 ms), so averaged over the syncs "
        "(ask for many: --repeats 50); KiB: largest body; rooms seen, timeline and state "
        "events: of the last successful sync.",
    ]
    if ok and ok[-1].rooms != options.rooms:
        notes.append(f"the sync listed {ok[-1].rooms} joined rooms, not {options.rooms}.")
    notes.extend(
        f"sync {index}: {s.status} {s.error}" for index, s in enumerate(samples) if s.error
    )
    notes.extend(f"send: first {c}: {e}" for c, e in sends.examples.items())
    return Report(
        scenario="initial_sync",
        base_url=base_url,
        params=asdict(options),
        results=[
            {
                "setup_s": round(setup_s, 3),
                "messages_accepted": sends.ok,
                "send_errors": dict(sends.errors),
                "latency_ms": latency.as_json(),
                "syncs": [s.as_json() for s in samples],
            }
        ],
        table=build_table(options, samples),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="initial_sync",
    help="initial /sync latency and size for a user in many rooms full of messages",
    add_arguments=add_arguments,
    run=run,
)
