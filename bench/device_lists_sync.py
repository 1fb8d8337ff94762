"""Scenario `device_lists_sync`: what a long-poll costs the server for users in many rooms
when nobody's devices changed, so that the cost of `device_lists` (and the key counts every
sync carries) shows.

One user is joined to `--rooms` rooms (made by a sender, who is in them too) and
holds long-poll syncs on `--devices` devices (a user's phone, laptop, ...; many, so
each message's own append is shared by many polls). The sender posts `--messages`
messages, one at a time, to one of the rooms, each once every device has the one
before: every message wakes every device once and nobody's device list changed.
Measured: the server's CPU time (user + system, from /proc) over the messages,
divided by the polls answered: µs of server CPU per poll; and per message. Run it
against two checkouts (`--server-dir`) to compare before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from bench.client import Homeserver, MatrixClient
from bench.process import ServerWatch
from bench.receiver import Receiver, catch_up_all, marked_content, poll_outcomes, stop_all
from bench.report import Report, Table, format_number
from bench.scenario import Scenario, add_timeout_ms


@dataclass(frozen=True)
class Options:
    devices: int
    rooms: int
    messages: int
    warmup: int
    setup_parallel: int
    timeout_ms: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--devices", type=int, default=50, help="devices of the user, polling (default 50)"
    )
    parser.add_argument("--rooms", type=int, default=500, help="rooms each is in (default 500)")
    parser.add_argument("--messages", type=int, default=300, help="measured (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured first (default 20)")
    parser.add_argument("--setup-parallel", type=int, default=10, help="(default 10)")
    add_timeout_ms(parser)


async def _all_have(receivers: list[Receiver], seq: int, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if all(seq in receiver.arrivals for receiver in receivers):
            return True
        await asyncio.sleep(0.001)
    return False


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = Options(
        devices=max(1, int(args.devices)),
        rooms=max(1, int(args.rooms)),
        messages=max(1, int(args.messages)),
        warmup=max(0, int(args.warmup)),
        setup_parallel=int(args.setup_parallel),
        timeout_ms=int(args.timeout_ms),
    )
    started_at = datetime.now(UTC)
    run_id = secrets.token_hex(4)
    watch = ServerWatch(args.server_pid, None)
    if watch.pid is None:
        raise SystemExit(
            "device_lists_sync reads the server's CPU: use --spawn-server or --server-pid"
        )
    sync_filter = {"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}}
    async with Homeserver.connect(
        base_url, connections=options.devices + options.setup_parallel + 4
    ) as server:
        setup_started = time.perf_counter()
        sender = await server.register(prefix="bench_dl_sender")
        gate = asyncio.Semaphore(options.setup_parallel)

        async def create() -> str:
            async with gate:
                return await sender.create_room(preset="public_chat")

        rooms = list(await asyncio.gather(*(create() for _ in range(options.rooms))))
        user = await server.register(prefix="bench_dl")

        async def join(room_id: str) -> None:
            async with gate:
                await user.join(room_id)

        await asyncio.gather(*(join(room) for room in rooms))

        async def login() -> MatrixClient:
            async with gate:
                return await server.login(user.user_id, user.password or "")

        pollers = [user, *await asyncio.gather(*(login() for _ in range(options.devices - 1)))]
        target = rooms[0]
        receivers = [
            Receiver(member, target, run_id, sync_filter=sync_filter, timeout_ms=options.timeout_ms)
            for member in pollers
        ]
        await catch_up_all(receivers, options.setup_parallel)
        setup_s = time.perf_counter() - setup_started

        deadline = time.perf_counter() + 600
        tasks = [asyncio.create_task(receiver.run(deadline)) for receiver in receivers]
        try:
            for seq in range(options.warmup):
                await sender.send_event(target, "m.room.message", marked_content(run_id, seq))
                await _all_have(receivers, seq, 30)
            polls_before = poll_outcomes(receivers).total
            before = watch.sample()
            wall_started = time.perf_counter()
            missing = 0
            for seq in range(options.warmup, options.warmup + options.messages):
                await sender.send_event(target, "m.room.message", marked_content(run_id, seq))
                if not await _all_have(receivers, seq, 30):
                    missing += 1
            wall_s = time.perf_counter() - wall_started
            after = watch.sample()
            polls = poll_outcomes(receivers).total - polls_before
        finally:
            await stop_all(tasks)
    assert before is not None and after is not None
    cpu_s = after.cpu_s - before.cpu_s
    per_poll_us = cpu_s / polls * 1e6 if polls else float("nan")
    per_message_us = cpu_s / options.messages * 1e6
    table = Table(
        headers=["devices", "rooms", "messages", "polls", "server cpu s", "µs/poll", "µs/msg"]
    )
    table.rows.append(
        [
            str(options.devices),
            str(options.rooms),
            str(options.messages),
            str(polls),
            format_number(cpu_s, 2),
            format_number(per_poll_us, 1),
            format_number(per_message_us, 1),
        ]
    )
    notes = [
        f"setup {setup_s:.1f} s; measured {wall_s:.1f} s; missing {missing}.",
        "µs/poll: the server's CPU time over the measured messages divided by the polls "
        "answered (each message wakes every device once); it includes the message's own "
        "append, shared by its polls (see µs/msg). /proc ticks are 10 ms: measure enough "
        "messages for the difference between two servers to stand out.",
    ]
    return Report(
        scenario="device_lists_sync",
        base_url=base_url,
        params=asdict(options),
        results=[
            {
                "setup_s": round(setup_s, 3),
                "wall_s": round(wall_s, 3),
                "polls": polls,
                "server_cpu_s": round(cpu_s, 3),
                "cpu_us_per_poll": round(per_poll_us, 1),
                "cpu_us_per_message": round(per_message_us, 1),
                "missing": missing,
            }
        ],
        table=table,
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="device_lists_sync",
    help="server CPU per long-poll of a user in 500 rooms when no device list changed",
    add_arguments=add_arguments,
    run=run,
)
