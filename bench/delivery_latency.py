"""Scenario `delivery_latency`: how long a message takes from send to every reader's sync.

One sender sends into one room at a fixed rate (`--rate` messages per second
for `--duration` seconds) while `--receivers` members each hold a long-poll
sync on it. The sender works open-loop: message i is due at start + i / rate
whatever the previous sends are doing, so a slow server shows up as latency,
not as a politely lowered rate (at most `--max-in-flight` sends are open; past
that the sender falls behind schedule and the report says by how much).

Measured, per receiver per message: from the moment the send request was
issued to the moment the sync response carrying it was read. After the last
send, receivers get `--grace` seconds to catch up; a message the server
accepted (200) that a receiver has not seen by then is lost, one it saw twice
is a duplicate. Both should be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from bench.client import (
    CLIENT_V3,
    TRANSPORT_ERRORS,
    ApiResponse,
    Homeserver,
    MatrixClient,
    RawConnection,
    path_segment,
)
from bench.process import ServerWatch
from bench.receiver import Receiver, catch_up_all, marked_content, poll_outcomes, stop_all
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.send import join_all
from bench.stats import LatencySummary, Outcomes, throughput

# A timeline this long is never cut short at 200 msg/s unless a receiver's
# polls stall for 2.5 s, which the report would show as `limited`.
TIMELINE_LIMIT = 500


@dataclass(frozen=True)
class DeliveryOptions:
    receivers: int
    rate: float
    duration_s: float
    grace_s: float
    max_in_flight: int
    timeout_ms: int
    setup_parallel: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DeliveryOptions:
        return cls(
            receivers=int(args.receivers),
            rate=float(args.rate),
            duration_s=float(args.duration),
            grace_s=float(args.grace),
            max_in_flight=int(args.max_in_flight),
            timeout_ms=int(args.timeout_ms),
            setup_parallel=int(args.setup_parallel),
        )

    @property
    def messages(self) -> int:
        return max(1, math.floor(self.rate * self.duration_s))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--receivers", type=int, default=50, metavar="R", help="members holding syncs (default 50)"
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="messages per second to send (default 200)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, metavar="SECONDS", help="send time (default 10)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="wait after the last send before counting a message lost (default 10)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=100,
        metavar="N",
        help="most sends open at once; beyond it the sender falls behind (default 100)",
    )
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=30_000,
        metavar="MS",
        help="long-poll timeout of each sync (default 30000)",
    )
    parser.add_argument(
        "--setup-parallel",
        type=int,
        default=8,
        metavar="P",
        help="registrations, joins and initial syncs in flight during setup (default 8)",
    )


@dataclass
class SendLog:
    """What the sender did: when each accepted message was issued, and failures."""

    issued_at: dict[int, float]
    accepted: list[int]
    outcomes: Outcomes
    wall_s: float
    # How late the sender issued sends against their schedule (in-flight cap, loop lag).
    max_behind_s: float


# A send not answered by then counts as a transport error.
SEND_TIMEOUT_S = 60.0
SEND_ERRORS: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, OSError, EOFError, ValueError)


async def send_at_rate(
    sender: MatrixClient, room_id: str, run_id: str, options: DeliveryOptions
) -> SendLog:
    """Send `options.messages` messages at `options.rate`, each noted as issued when
    its request's bytes reach the socket (plain http; aiohttp over https)."""
    issued_at: dict[int, float] = {}
    accepted: list[int] = []
    outcomes = Outcomes()
    gate = asyncio.Semaphore(options.max_in_flight)
    tasks: list[asyncio.Task[None]] = []
    max_behind = 0.0
    raw = sender.server.base_url.startswith("http:")
    idle: list[RawConnection] = []
    path_prefix = f"{CLIENT_V3}/rooms/{path_segment(room_id)}/send/m.room.message/"

    async def one_raw(seq: int, connection: RawConnection) -> None:
        try:
            await connection.connect()
            body = orjson.dumps(marked_content(run_id, seq))
            sent_at, pending = connection.send(
                "PUT", path_prefix + path_segment(sender.next_txn_id()), body
            )
            issued_at[seq] = sent_at
            async with asyncio.timeout(SEND_TIMEOUT_S):
                status, _, _, received_at = await pending
        except SEND_ERRORS as error:
            await connection.close()
            outcomes.record_exception(aiohttp.ClientConnectionError(repr(error)))
            return
        finally:
            idle.append(connection)
            gate.release()
        outcomes.record(ApiResponse("PUT", path_prefix, status, {}, received_at - sent_at))
        if status == 200:
            accepted.append(seq)

    async def one(seq: int) -> None:
        try:
            try:
                response = await sender.send_event(
                    room_id, "m.room.message", marked_content(run_id, seq)
                )
            except TRANSPORT_ERRORS as error:
                outcomes.record_exception(error)
                return
            outcomes.record(response)
            if response.ok:
                accepted.append(seq)
        finally:
            gate.release()

    started = time.perf_counter()
    for seq in range(options.messages):
        due = started + seq / options.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        now = time.perf_counter()
        max_behind = max(max_behind, now - due)
        if raw:
            connection = idle.pop() if idle else sender.raw_connection()
            issued_at[seq] = now  # replaced by the moment its bytes are written
            tasks.append(asyncio.create_task(one_raw(seq, connection)))
        else:
            issued_at[seq] = now
            tasks.append(asyncio.create_task(one(seq)))
    await asyncio.gather(*tasks)
    for connection in idle:
        await connection.close()
    wall_s = time.perf_counter() - started
    return SendLog(issued_at, sorted(accepted), outcomes, wall_s, max_behind)


async def wait_for_delivery(receivers: list[Receiver], seqs: list[int], grace_s: float) -> float:
    """Wait until every receiver has every message, at most `grace_s`; the time waited."""
    started = time.perf_counter()
    deadline = started + grace_s
    while time.perf_counter() < deadline:
        if all(receiver.missing(seqs) == 0 for receiver in receivers):
            break
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


@dataclass
class DeliveryResult:
    send: SendLog
    latency: LatencySummary
    lost: int
    lost_in_limited_gaps: int
    receivers_missing: int
    unexpected: int
    duplicates: int
    limited: int
    polls: Outcomes
    drain_s: float
    setup_s: float
    client_cpu_s: float
    server_cpu_s: float | None
    measured_wall_s: float

    @property
    def send_rate(self) -> float:
        return throughput(self.send.outcomes.ok, self.send.wall_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "messages_attempted": self.send.outcomes.total,
            "messages_accepted": self.send.outcomes.ok,
            "send_errors": dict(self.send.outcomes.errors),
            "send_error_examples": self.send.outcomes.examples,
            "send_wall_s": round(self.send.wall_s, 3),
            "achieved_send_rate": round(self.send_rate, 1),
            "send_latency_ms": self.send.outcomes.latency().as_json(),
            "sender_max_behind_schedule_ms": round(self.send.max_behind_s * 1000, 1),
            "delivery_latency_ms": self.latency.as_json(),
            "lost": self.lost,
            "lost_in_limited_gaps": self.lost_in_limited_gaps,
            "receivers_missing_messages": self.receivers_missing,
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "limited_timelines": self.limited,
            "polls": self.polls.total,
            "poll_errors": dict(self.polls.errors),
            "poll_error_examples": self.polls.examples,
            "drain_s": round(self.drain_s, 3),
            "setup_s": round(self.setup_s, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "server_cpu_s": (
                round(self.server_cpu_s, 3) if self.server_cpu_s is not None else None
            ),
            "measured_wall_s": round(self.measured_wall_s, 3),
        }


def build_table(options: DeliveryOptions, result: DeliveryResult) -> Table:
    table = Table(
        [
            "receivers",
            "sent ok",
            "send err",
            "msg/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "lost",
            "dups",
            "limited",
            "poll err",
            "client cpu",
            "server cpu",
        ]
    )
    latency = result.latency

    def share(cpu_s: float | None) -> str:
        if cpu_s is None or result.measured_wall_s <= 0:
            return "-"
        return f"{cpu_s / result.measured_wall_s:.0%}"

    table.rows.append(
        [
            str(options.receivers),
            str(result.send.outcomes.ok),
            str(result.send.outcomes.error_count),
            format_number(result.send_rate, 1),
            format_number(latency.p50_ms, 1),
            format_number(latency.p95_ms, 1),
            format_number(latency.p99_ms, 1),
            format_number(latency.max_ms, 1),
            str(result.lost),
            str(result.duplicates),
            str(result.limited),
            str(result.polls.error_count),
            share(result.client_cpu_s),
            share(result.server_cpu_s),
        ]
    )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = DeliveryOptions.from_args(args)
    started_at = datetime.now(UTC)
    run_id = secrets.token_hex(4)
    sync_filter = {"room": {"timeline": {"limit": TIMELINE_LIMIT}}}
    # One socket per held poll and per open send, plus setup headroom.
    connections = options.receivers + options.max_in_flight + options.setup_parallel + 4
    watch = ServerWatch(args.server_pid, None)
    async with Homeserver.connect(base_url, connections=connections) as server:
        setup_started = time.perf_counter()
        sender = await server.register(prefix="bench_sender")
        room_id = await sender.create_room(preset="public_chat", name="bench delivery latency")
        members = await server.register_many(options.receivers, parallel=options.setup_parallel)
        await join_all(members, room_id, options.setup_parallel)
        receivers = [
            Receiver(
                member, room_id, run_id, sync_filter=sync_filter, timeout_ms=options.timeout_ms
            )
            for member in members
        ]
        await catch_up_all(receivers, options.setup_parallel)
        setup_s = time.perf_counter() - setup_started

        # Bounded in time even if the server never answers: sending, grace, slack.
        deadline = time.perf_counter() + options.duration_s * 3 + options.grace_s + 60
        tasks = [asyncio.create_task(receiver.run(deadline)) for receiver in receivers]
        try:
            # Let every receiver's first long-poll reach the server.
            await asyncio.sleep(1.0)
            cpu_started = time.process_time()
            server_before = watch.sample()
            measured_started = time.perf_counter()
            send_log = await send_at_rate(sender, room_id, run_id, options)
            drain_s = await wait_for_delivery(receivers, send_log.accepted, options.grace_s)
            measured_wall_s = time.perf_counter() - measured_started
            client_cpu_s = time.process_time() - cpu_started
            server_after = watch.sample()
        finally:
            await stop_all(tasks)

    accepted = set(send_log.accepted)
    samples = [
        arrived - send_log.issued_at[seq]
        for receiver in receivers
        for seq, arrived in receiver.arrivals.items()
        if seq in accepted
    ]
    result = DeliveryResult(
        send=send_log,
        latency=LatencySummary.from_seconds(samples),
        lost=sum(receiver.missing(send_log.accepted) for receiver in receivers),
        lost_in_limited_gaps=sum(r.missing_in_gaps(send_log.accepted) for r in receivers),
        receivers_missing=sum(1 for r in receivers if r.missing(send_log.accepted)),
        unexpected=sum(1 for r in receivers for seq in r.arrivals if seq not in accepted),
        duplicates=sum(receiver.duplicates for receiver in receivers),
        limited=sum(receiver.limited for receiver in receivers),
        polls=poll_outcomes(receivers),
        drain_s=drain_s,
        setup_s=setup_s,
        client_cpu_s=client_cpu_s,
        server_cpu_s=(
            server_after.cpu_s - server_before.cpu_s
            if server_after is not None and server_before is not None
            else None
        ),
        measured_wall_s=measured_wall_s,
    )
    notes = [
        f"latency: send request issued -> sync response carrying it read, over "
        f"{result.latency.count} (receiver, message) pairs; msg/s: accepted sends over the "
        f"send phase ({result.send.wall_s:.2f} s); send latency p50 "
        f"{result.send.outcomes.latency().p50_ms:.1f} ms, p99 "
        f"{result.send.outcomes.latency().p99_ms:.1f} ms; sender at most "
        f"{result.send.max_behind_s * 1000:.0f} ms behind schedule; setup {setup_s:.1f} s; "
        f"waited {drain_s:.2f} s after the last send.",
        "lost: accepted messages some receiver had not seen after the grace period "
        f"({result.receivers_missing} receivers missing some; {result.lost_in_limited_gaps} of "
        "the lost fell in the gap before a limited timeline, i.e. the server cut them for "
        "the timeline limit rather than dropping them); dups: delivered twice; "
        "limited: timelines the server cut short.",
        "client/server cpu: CPU time of this process / of the server process (not its "
        "database) over the measured time, sends through grace; near 100% is one core "
        "saturated.",
    ]
    notes.extend(f"send: first {c}: {e}" for c, e in send_log.outcomes.examples.items())
    notes.extend(f"sync: first {c}: {e}" for c, e in result.polls.examples.items())
    return Report(
        scenario="delivery_latency",
        base_url=base_url,
        params={**asdict(options), "messages": options.messages, "room_id": room_id},
        results=[result.as_json()],
        table=build_table(options, result),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="delivery_latency",
    help="send-to-sync latency of messages sent at a fixed rate to members holding syncs",
    add_arguments=add_arguments,
    run=run,
)
