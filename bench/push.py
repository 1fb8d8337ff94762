"""Scenarios `push_fanout` and `push_send`: push notifications, measured at a gateway.

Both start a Push Gateway stand-in in this process (`GatewayReceiver`: it
answers `POST /_matrix/push/v1/notify` with `{"rejected": []}` and notes when
each notification arrived) and point the members' pushers at it.

- `push_fanout`: `--members` users (default 1000) join one room, each sets a
  pusher; per round the owner sends one message. Measured from the send
  request being issued until the gateway has received all members-1
  notifications of it (the target: under 2 s for 1000).
- `push_send`: `--pairs` rooms of two (default 1000), a receiver and one of
  `--senders` senders in each; the senders send round-robin into their rooms
  as fast as the server answers, first with no pusher anywhere, then with every
  receiver's pusher set (one push per message): messages per second each way,
  and the second as a share of the first (the target: at least 80%), plus the
  time until the gateway has all the pushes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bench.client import TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.send import join_all
from bench.stats import percentile

NOTIFY = "/_matrix/push/v1/notify"


class GatewayReceiver:
    """A Push Gateway that takes everything, noting when each event's pushes arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.total = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(NOTIFY, self._notify)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        event_id = body.get("notification", {}).get("event_id", "")
        self.arrivals.setdefault(event_id, []).append(time.perf_counter())
        self.total += 1
        self._changed.set()
        return web.json_response({"rejected": []})

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> float:
        """Wait until `condition` holds (at most `timeout_s`); the time waited."""
        started = time.perf_counter()
        while not condition():
            remaining = timeout_s - (time.perf_counter() - started)
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return time.perf_counter() - started


def pusher(url: str) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "bench.push",
        "pushkey": "bench-" + secrets.token_hex(8),
        "app_display_name": "bench",
        "device_display_name": "bench",
        "lang": "en",
        "data": {"url": url, "format": "event_id_only"},
    }


async def set_pushers(clients: list[MatrixClient], url: str, parallel: int) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(client: MatrixClient) -> None:
        async with gate:
            response = await client.request(
                "POST", "/_matrix/client/v3/pushers/set", json_body=pusher(url)
            )
            response.expect_ok()

    await asyncio.gather(*(one(client) for client in clients))


# push_fanout


@dataclass(frozen=True)
class FanoutOptions:
    members: int
    rounds: int
    setup_parallel: int
    round_timeout_s: float


def add_fanout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=1000, help="room members (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="messages, one per round")
    parser.add_argument("--setup-parallel", type=int, default=8, metavar="P")
    parser.add_argument("--round-timeout", type=float, default=60.0, metavar="SECONDS")


async def run_fanout(base_url: str, args: argparse.Namespace) -> Report:
    options = FanoutOptions(
        max(2, int(args.members)),
        max(1, int(args.rounds)),
        int(args.setup_parallel),
        float(args.round_timeout),
    )
    started_at = datetime.now(UTC)
    gateway = GatewayReceiver()
    await gateway.start()
    rows: list[dict[str, Any]] = []
    try:
        async with Homeserver.connect(base_url, connections=options.setup_parallel + 8) as server:
            owner = await server.register(prefix="bench_owner")
            room_id = await owner.create_room(preset="public_chat", name="bench push")
            setup_started = time.perf_counter()
            others = await server.register_many(
                options.members - 1, parallel=options.setup_parallel
            )
            await join_all(others, room_id, options.setup_parallel)
            await set_pushers(others, gateway.url, options.setup_parallel)
            setup_s = time.perf_counter() - setup_started
            expected = options.members - 1
            for number in range(options.rounds):
                await asyncio.sleep(1.0)
                issued = time.perf_counter()
                response = await owner.send_event(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": f"push {number}"}
                )
                event_id = str(response.expect_ok()["event_id"])
                await gateway.until(
                    lambda event_id=event_id: len(gateway.arrivals.get(event_id, ())) >= expected,
                    options.round_timeout_s,
                )
                times = sorted(t - issued for t in gateway.arrivals.get(event_id, []))
                rows.append(
                    {
                        "round": number,
                        "received": len(times),
                        "missing": expected - len(times),
                        "p50_ms": round(percentile(times, 0.5) * 1000, 1) if times else None,
                        "last_ms": round(times[-1] * 1000, 1) if times else None,
                    }
                )
    finally:
        await gateway.stop()
    table = Table(["round", "pushers", "received", "missing", "p50 ms", "last ms"])
    for row in rows:
        table.rows.append(
            [
                str(row["round"]),
                str(options.members - 1),
                str(row["received"]),
                str(row["missing"]),
                format_number(row["p50_ms"], 1),
                format_number(row["last_ms"], 1),
            ]
        )
    return Report(
        scenario="push_fanout",
        base_url=base_url,
        params=asdict(options),
        results=[{"setup_s": round(setup_s, 1), "rounds": rows}],
        table=table,
        notes=[
            f"setup {setup_s:.1f} s (register, join, set pushers).",
            "p50/last: from the send request being issued until the gateway had the median / "
            "last member's notification.",
        ],
        started_at=started_at,
    )


# push_send


@dataclass(frozen=True)
class SendOptions:
    pairs: int
    senders: int
    messages: int
    setup_parallel: int


def add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=int, default=1000, help="rooms of two (default 1000)")
    parser.add_argument("--senders", type=int, default=100, help="concurrent senders")
    parser.add_argument("--messages", type=int, default=3000, help="messages per phase")
    parser.add_argument("--setup-parallel", type=int, default=8, metavar="P")


async def _send_phase(
    senders: list[MatrixClient], rooms: list[list[str]], messages: int
) -> tuple[float, int, list[str]]:
    """Each sender sends its share round-robin into its rooms; (seconds, failures, IDs)."""
    per_sender = max(1, messages // len(senders))
    failures = 0
    event_ids: list[str] = []

    async def one(sender: MatrixClient, its_rooms: list[str]) -> None:
        nonlocal failures
        for n in range(per_sender):
            room_id = its_rooms[n % len(its_rooms)]
            try:
                response = await sender.send_event(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{n}"}
                )
            except TRANSPORT_ERRORS:
                failures += 1
                continue
            if response.ok:
                event_ids.append(str(response.body["event_id"]))
            else:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(s, r) for s, r in zip(senders, rooms, strict=True)))
    return time.perf_counter() - started, failures, event_ids


async def run_send(base_url: str, args: argparse.Namespace) -> Report:
    options = SendOptions(
        max(1, int(args.pairs)),
        max(1, int(args.senders)),
        max(1, int(args.messages)),
        int(args.setup_parallel),
    )
    started_at = datetime.now(UTC)
    gateway = GatewayReceiver()
    await gateway.start()
    phases: list[dict[str, Any]] = []
    try:
        connections = options.senders + options.setup_parallel + 8
        async with Homeserver.connect(base_url, connections=connections) as server:
            setup_started = time.perf_counter()
            senders = await server.register_many(options.senders, parallel=options.setup_parallel)
            receivers = await server.register_many(options.pairs, parallel=options.setup_parallel)
            rooms: list[list[str]] = [[] for _ in senders]
            gate = asyncio.Semaphore(options.setup_parallel)

            async def pair(index: int, receiver: MatrixClient) -> None:
                sender = senders[index % len(senders)]
                async with gate:
                    room_id = await sender.create_room(preset="public_chat")
                    await join_all([receiver], room_id, 1)
                rooms[index % len(senders)].append(room_id)

            await asyncio.gather(*(pair(i, r) for i, r in enumerate(receivers)))
            setup_s = time.perf_counter() - setup_started
            for label in ("no pushers", "pushers", "no pushers (again)"):
                if label == "pushers":
                    await set_pushers(receivers, gateway.url, options.setup_parallel)
                elif label.startswith("no pushers (again)"):
                    await _delete_pushers(receivers, options.setup_parallel)
                before = gateway.total
                elapsed, failures, event_ids = await _send_phase(senders, rooms, options.messages)
                drained = None
                if label == "pushers":
                    sent = len(event_ids)
                    drained = await gateway.until(
                        lambda before=before, sent=sent: gateway.total - before >= sent, 120.0
                    )
                phases.append(
                    {
                        "phase": label,
                        "messages": len(event_ids),
                        "failures": failures,
                        "seconds": round(elapsed, 3),
                        "msg_per_s": round(len(event_ids) / elapsed, 1),
                        "pushes": gateway.total - before,
                        "pushes_drained_after_s": None if drained is None else round(drained, 3),
                    }
                )
    finally:
        await gateway.stop()
    without = [p["msg_per_s"] for p in phases if p["phase"].startswith("no pushers")]
    with_pushers = next(p["msg_per_s"] for p in phases if p["phase"] == "pushers")
    share = with_pushers / (sum(without) / len(without)) if without else float("nan")
    table = Table(["phase", "messages", "failures", "msg/s", "pushes", "drained after s"])
    for phase in phases:
        table.rows.append(
            [
                phase["phase"],
                str(phase["messages"]),
                str(phase["failures"]),
                format_number(phase["msg_per_s"], 1),
                str(phase["pushes"]),
                format_number(phase["pushes_drained_after_s"], 2),
            ]
        )
    return Report(
        scenario="push_send",
        base_url=base_url,
        params=asdict(options),
        results=[{"setup_s": round(setup_s, 1), "phases": phases, "share": round(share, 3)}],
        table=table,
        notes=[
            f"with pushers: {share:.0%} of the throughput without (mean of the two runs without).",
            "drained after: from the end of the sends until the gateway had every push.",
        ],
        started_at=started_at,
    )


async def _delete_pushers(clients: list[MatrixClient], parallel: int) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(client: MatrixClient) -> None:
        async with gate:
            listed = await client.request("GET", "/_matrix/client/v3/pushers")
            for found in listed.expect_ok()["pushers"]:
                body = {"kind": None, "app_id": found["app_id"], "pushkey": found["pushkey"]}
                await client.request("POST", "/_matrix/client/v3/pushers/set", json_body=body)

    await asyncio.gather(*(one(client) for client in clients))


FANOUT = Scenario(
    name="push_fanout",
    help="time until a gateway has the pushes of one message to a room of 1000 with pushers",
    add_arguments=add_fanout_arguments,
    run=run_fanout,
)

SEND = Scenario(
    name="push_send",
    help="send throughput with a pusher per receiving member, against none",
    add_arguments=add_send_arguments,
    run=run_send,
)
