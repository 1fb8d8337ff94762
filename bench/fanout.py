"""Scenario `fanout`: one message to a big room, until the last member has it.

`--members` users (the sender among them) join one room and all hold
long-poll syncs. Once every member's poll is in flight and a settling pause
has passed, the sender sends one message; a round lasts until the last member
has received it. Measured per round, from the send request being issued:
when the median member and when the last member had it, and how many never
did within `--round-timeout`. `--rounds` rounds, each after every member is
polling again.

`measure_fanout` is the scenario with the room left open: `channel_fanout`
runs it in a broadcast channel.

Setup is slow on purpose and timed apart: registration hashes a password on
the server (about 50 ms each, so 1000 members take a minute or more), and
joining a room grows its state one member at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bench.client import TRANSPORT_ERRORS, ApiResponse, Homeserver, MatrixClient
from bench.process import ServerWatch
from bench.receiver import Receiver, catch_up_all, marked_content, poll_outcomes, stop_all
from bench.report import Report, Table, format_number
from bench.scenario import Scenario, add_timeout_ms
from bench.send import join_all
from bench.stats import LatencySummary, percentile


@dataclass(frozen=True)
class FanoutOptions:
    members: int
    rounds: int
    settle_s: float
    round_timeout_s: float
    timeout_ms: int
    setup_parallel: int

    @classmethod
    def from_args(cls, args: argparse.Namespace, members: int | None = None) -> FanoutOptions:
        """Options from the parsed arguments; `members` instead of `--members` when given."""
        return cls(
            members=max(1, int(args.members if members is None else members)),
            rounds=max(1, int(args.rounds)),
            settle_s=float(args.settle),
            round_timeout_s=float(args.round_timeout),
            timeout_ms=int(args.timeout_ms),
            setup_parallel=int(args.setup_parallel),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--members",
        type=int,
        default=1000,
        metavar="M",
        help="room members holding syncs, the sender included (default 1000)",
    )
    add_round_arguments(parser)


def add_round_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every fan-out scenario but the audience size."""
    parser.add_argument("--rounds", type=int, default=3, help="messages sent, one per round")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="pause once every member's poll is in flight, before sending (default 2)",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up on members that have not received a round's message by then (default 60)",
    )
    add_timeout_ms(parser)
    parser.add_argument(
        "--setup-parallel",
        type=int,
        default=8,
        metavar="P",
        help="registrations, joins and initial syncs in flight during setup (default 8)",
    )


@dataclass
class RoundResult:
    round: int
    received: int
    missing: int
    # From the send request being issued to the member's sync response being read.
    p50_s: float
    last_s: float
    send: ApiResponse | None
    send_error: str | None
    waited_for_polls_s: float
    # CPU used from the send until the round ended, by this process and by the server.
    round_s: float
    client_cpu_s: float
    server_cpu_s: float | None

    def cpu_share(self, cpu_s: float | None) -> str:
        if cpu_s is None or self.round_s <= 0:
            return "-"
        return f"{cpu_s / self.round_s:.0%}"

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "received": self.received,
            "missing": self.missing,
            "p50_ms": round(self.p50_s * 1000, 1) if self.received else None,
            "last_ms": round(self.last_s * 1000, 1) if self.received else None,
            "send_status": self.send.status if self.send else None,
            "send_ms": round(self.send.elapsed * 1000, 1) if self.send else None,
            "send_error": self.send_error,
            "waited_for_polls_s": round(self.waited_for_polls_s, 3),
            "round_s": round(self.round_s, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 3),
        }


async def wait_until_polling(receivers: list[Receiver], timeout_s: float) -> float:
    """Wait (at most `timeout_s`) until every receiver has a poll open; the time waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if all(receiver.in_flight for receiver in receivers):
            break
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def run_round(
    number: int,
    receivers: list[Receiver],
    run_id: str,
    options: FanoutOptions,
    watch: ServerWatch,
) -> RoundResult:
    waited = await wait_until_polling(receivers, options.round_timeout_s)
    await asyncio.sleep(options.settle_s)
    sender = receivers[0]
    server_before = watch.sample()
    cpu_before = time.process_time()
    issued_at = time.perf_counter()
    response: ApiResponse | None = None
    send_error: str | None = None
    try:
        response = await sender.client.send_event(
            sender.room_id, "m.room.message", marked_content(run_id, number)
        )
        if not response.ok:
            send_error = f"{response.status} {response.body}"
    except TRANSPORT_ERRORS as error:
        send_error = f"{type(error).__name__}: {error}"
    deadline = issued_at + options.round_timeout_s
    while send_error is None and time.perf_counter() < deadline:
        if all(number in receiver.arrivals for receiver in receivers):
            break
        await asyncio.sleep(0.02)
    round_s = time.perf_counter() - issued_at
    client_cpu_s = time.process_time() - cpu_before
    server_after = watch.sample()
    delays = sorted(
        receiver.arrivals[number] - issued_at
        for receiver in receivers
        if number in receiver.arrivals
    )
    return RoundResult(
        round=number,
        received=len(delays),
        missing=len(receivers) - len(delays),
        p50_s=percentile(delays, 0.5) if delays else float("nan"),
        last_s=delays[-1] if delays else float("nan"),
        send=response,
        send_error=send_error,
        waited_for_polls_s=waited,
        round_s=round_s,
        client_cpu_s=client_cpu_s,
        server_cpu_s=(
            server_after.cpu_s - server_before.cpu_s
            if server_after is not None and server_before is not None
            else None
        ),
    )


def build_table(members: int, rounds: list[RoundResult]) -> Table:
    table = Table(
        [
            "round",
            "members",
            "received",
            "missing",
            "send ms",
            "p50 ms",
            "last ms",
            "client cpu",
            "server cpu",
            "send error",
        ]
    )
    for result in rounds:
        table.rows.append(
            [
                str(result.round),
                str(members),
                str(result.received),
                str(result.missing),
                format_number(result.send.elapsed * 1000 if result.send else None, 1),
                format_number(result.p50_s * 1000, 1),
                format_number(result.last_s * 1000, 1),
                result.cpu_share(result.client_cpu_s),
                result.cpu_share(result.server_cpu_s),
                result.send_error or "-",
            ]
        )
    return table


# Creates the measured room as its owner, who is also the one who sends.
RoomFactory = Callable[[MatrixClient], Awaitable[str]]
# Describes the room once everyone is in it (a note for the report).
RoomCheck = Callable[[MatrixClient, str], Awaitable[str]]


async def run(base_url: str, args: argparse.Namespace) -> Report:
    return await measure_fanout(
        base_url,
        FanoutOptions.from_args(args),
        scenario="fanout",
        server_pid=args.server_pid,
        create_room=lambda owner: owner.create_room(preset="public_chat", name="bench fanout"),
    )


async def measure_fanout(
    base_url: str,
    options: FanoutOptions,
    *,
    scenario: str,
    server_pid: int | None,
    create_room: RoomFactory,
    describe_room: RoomCheck | None = None,
) -> Report:
    """Run the rounds: `options.members` users in the room `create_room` makes, its owner
    sending; the report names `scenario`."""
    started_at = datetime.now(UTC)
    run_id = secrets.token_hex(4)
    # Members only ever see their own messages' senders: lazy-loading keeps the
    # initial syncs from carrying the whole member list a thousand times.
    sync_filter = {
        "room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": True}},
    }
    connections = options.members + options.setup_parallel + 4
    watch = ServerWatch(server_pid, None)
    async with Homeserver.connect(base_url, connections=connections) as server:
        setup_started = time.perf_counter()
        owner = await server.register(prefix="bench_owner")
        room_id = await create_room(owner)
        registered_at = time.perf_counter()
        others = await server.register_many(options.members - 1, parallel=options.setup_parallel)
        register_s = time.perf_counter() - registered_at
        joined_at = time.perf_counter()
        await join_all(others, room_id, options.setup_parallel)
        join_s = time.perf_counter() - joined_at
        receivers = [
            Receiver(
                member, room_id, run_id, sync_filter=sync_filter, timeout_ms=options.timeout_ms
            )
            for member in [owner, *others]
        ]
        synced_at = time.perf_counter()
        await catch_up_all(receivers, options.setup_parallel)
        initial_sync_s = time.perf_counter() - synced_at
        setup_s = time.perf_counter() - setup_started
        room_note = await describe_room(owner, room_id) if describe_room is not None else None

        per_round = options.round_timeout_s * 2 + options.settle_s
        deadline = time.perf_counter() + per_round * options.rounds + 60
        tasks = [asyncio.create_task(receiver.run(deadline)) for receiver in receivers]
        rounds: list[RoundResult] = []
        try:
            for number in range(options.rounds):
                rounds.append(await run_round(number, receivers, run_id, options, watch))
        finally:
            await stop_all(tasks)

    polls = poll_outcomes(receivers)
    duplicates = sum(receiver.duplicates for receiver in receivers)
    lasts = [r.last_s for r in rounds if r.received]
    setup = {
        "setup_s": round(setup_s, 3),
        "register_s": round(register_s, 3),
        "join_s": round(join_s, 3),
        "initial_sync_s": round(initial_sync_s, 3),
    }
    notes = [
        f"setup {setup_s:.1f} s: register {options.members - 1} users {register_s:.1f} s, "
        f"join {join_s:.1f} s, initial syncs {initial_sync_s:.1f} s "
        f"(parallel {options.setup_parallel}).",
        "p50/last: from the send request being issued until the median / last member's sync "
        "response carrying the message was read; missing: members without it after "
        f"{options.round_timeout_s:.0f} s.",
        "client/server cpu: CPU time of this process / of the server process over the round "
        "(send to last receipt); near 100% is one core saturated.",
        f"duplicates {duplicates}; polls {polls.total}, poll errors {dict(polls.errors) or 0}.",
    ]
    if lasts:
        summary = LatencySummary.from_seconds(lasts)
        notes.append(
            f"last member over rounds: p50 {summary.p50_ms:.1f} ms, max {summary.max_ms:.1f} ms."
        )
    notes.extend(f"sync: first {c}: {e}" for c, e in polls.examples.items())
    if room_note is not None:
        notes.append(room_note)
    return Report(
        scenario=scenario,
        base_url=base_url,
        params={**asdict(options), "room_id": room_id},
        results=[
            {
                **setup,
                "rounds": [r.as_json() for r in rounds],
                "duplicates": duplicates,
                "polls": polls.total,
                "poll_errors": dict(polls.errors),
                "poll_error_examples": polls.examples,
            }
        ],
        table=build_table(options.members, rounds),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="fanout",
    help="time until every member of a big room has one message, all holding syncs",
    add_arguments=add_arguments,
    run=run,
)
