"""Scenario `device_roundtrip`: a device command from its owner to the device and back.

Each of `--pairs` owners creates a device (POST /_linkchat/v1/devices); the
device agent logs in with its login token (m.login.token), publishes its
capabilities and holds a long-poll /sync. Then each owner, in turn and one
command at a time, sends a `com.linkchat.device.command`; the device reads it
from its sync and answers with a `com.linkchat.device.result` (succeeded)
related to it; the owner's own long-poll sync reads that result.

Measured per command: from the moment the owner's send request was issued to
the moment the owner's sync response carrying the result was read, so it
covers the command's append, the device's wake-up, the result's append and
the owner's wake-up. The target is p99 < 100 ms. `--warmup` round trips per
pair are not measured. Each round trip has `--deadline` seconds; one that
misses it counts as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.client import (
    CLIENT_V3,
    TRANSPORT_ERRORS,
    Homeserver,
    JsonDict,
    MatrixClient,
    SyncStream,
    path_segment,
)
from bench.report import Report, Table, format_number
from bench.scenario import Scenario, add_timeout_ms
from bench.stats import LatencySummary

DEVICES = "/_linkchat/v1/devices"
COMMAND = "com.linkchat.device.command"
RESULT = "com.linkchat.device.result"
CAPABILITIES = {"actions": {"ping": {"args_schema": {"type": "object"}}}}
TARGET_P99_MS = 100.0


@dataclass(frozen=True)
class RoundtripOptions:
    pairs: int
    commands: int
    warmup: int
    timeout_ms: int
    deadline_s: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=1, help="owner/device pairs working at once (default 1)"
    )
    parser.add_argument(
        "--commands", type=int, default=200, help="measured round trips per pair (default 200)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="unmeasured round trips per pair first (default 5)"
    )
    add_timeout_ms(parser)
    parser.add_argument(
        "--deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a round trip slower than this counts as lost (default 10)",
    )


@dataclass
class Pair:
    owner: MatrixClient
    device: MatrixClient
    room_id: str
    owner_stream: SyncStream
    device_stream: SyncStream


async def make_pair(server: Homeserver, timeout_ms: int) -> Pair:
    owner = await server.register(prefix="bench_owner")
    created = (
        await owner.request("POST", DEVICES, json_body={"display_name": "bench device"})
    ).expect_ok()
    login = (
        await server.request(
            "POST",
            f"{CLIENT_V3}/login",
            json_body={"type": "m.login.token", "token": created["login_token"]},
        )
    ).expect_ok()
    device = MatrixClient(server, login["user_id"], login["access_token"], login["device_id"])
    room_id = created["room_id"]
    path = f"{CLIENT_V3}/rooms/{path_segment(room_id)}/state/com.linkchat.device.capabilities"
    (await device.request("PUT", path, json_body=CAPABILITIES)).expect_ok()
    sync_filter = {"room": {"timeline": {"limit": 50}}}
    pair = Pair(
        owner,
        device,
        room_id,
        owner.sync_stream(timeout_ms=timeout_ms, sync_filter=sync_filter),
        device.sync_stream(timeout_ms=timeout_ms, sync_filter=sync_filter),
    )
    await pair.owner_stream.catch_up()
    await pair.device_stream.catch_up()
    return pair


async def run_device(pair: Pair, errors: dict[str, int]) -> None:
    """The device agent: answer every command its sync brings, until cancelled."""
    async for _, room_id, event in pair.device_stream.events():
        if room_id != pair.room_id or event.get("type") != COMMAND:
            continue
        content = {
            "status": "succeeded",
            "output": {"pong": True},
            "m.relates_to": {"rel_type": "com.linkchat.result", "event_id": event["event_id"]},
        }
        try:
            sent = await pair.device.send_event(room_id, RESULT, content)
        except TRANSPORT_ERRORS as error:
            key = f"result exception:{type(error).__name__}"
            errors[key] = errors.get(key, 0) + 1
            continue
        if not sent.ok:
            key = f"result {sent.status}"
            errors[key] = errors.get(key, 0) + 1


def _answers(command_id: str, room_id: str) -> Any:
    def matches(event_room: str, event: JsonDict) -> bool:
        relates_to = (event.get("content") or {}).get("m.relates_to") or {}
        return (
            event_room == room_id
            and event.get("type") == RESULT
            and relates_to.get("event_id") == command_id
        )

    return matches


async def run_owner(
    pair: Pair, count: int, options: RoundtripOptions, errors: dict[str, int]
) -> list[float]:
    """`count` round trips, one after the other; their durations in seconds."""
    samples: list[float] = []
    for _ in range(count):
        content = {"action": "ping", "args": {}, "ttl_ms": 60_000}
        started = time.perf_counter()
        try:
            sent = await pair.owner.send_event(pair.room_id, COMMAND, content)
        except TRANSPORT_ERRORS as error:
            key = f"command exception:{type(error).__name__}"
            errors[key] = errors.get(key, 0) + 1
            continue
        if not sent.ok:
            key = f"command {sent.status}"
            errors[key] = errors.get(key, 0) + 1
            continue
        command_id = sent.body["event_id"]
        try:
            arrived_at, _, _ = await pair.owner_stream.wait_for(
                _answers(command_id, pair.room_id), deadline_s=options.deadline_s
            )
        except TimeoutError:
            errors["lost"] = errors.get("lost", 0) + 1
            continue
        samples.append(arrived_at - started)
    return samples


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = RoundtripOptions(
        pairs=int(args.pairs),
        commands=int(args.commands),
        warmup=int(args.warmup),
        timeout_ms=int(args.timeout_ms),
        deadline_s=float(args.deadline),
    )
    # Per pair: two held polls and a send each, plus headroom.
    connections = options.pairs * 4 + 8
    errors: dict[str, int] = {}
    async with Homeserver.connect(base_url, connections=connections) as server:
        setup_started = time.perf_counter()
        pairs = list(
            await asyncio.gather(
                *(make_pair(server, options.timeout_ms) for _ in range(options.pairs))
            )
        )
        setup_s = time.perf_counter() - setup_started
        devices = [asyncio.create_task(run_device(pair, errors)) for pair in pairs]
        try:
            warmup_errors: dict[str, int] = {}
            await asyncio.gather(
                *(run_owner(pair, options.warmup, options, warmup_errors) for pair in pairs)
            )
            measured_started = time.perf_counter()
            per_pair = await asyncio.gather(
                *(run_owner(pair, options.commands, options, errors) for pair in pairs)
            )
            wall_s = time.perf_counter() - measured_started
        finally:
            for task in devices:
                task.cancel()
            await asyncio.gather(*devices, return_exceptions=True)
    samples = [sample for pair_samples in per_pair for sample in pair_samples]
    latency = LatencySummary.from_seconds(samples)
    result: dict[str, Any] = {
        "pairs": options.pairs,
        "round_trips": len(samples),
        "attempted": options.pairs * options.commands,
        "errors": errors,
        "latency_ms": latency.as_json(),
        "round_trips_per_s": len(samples) / wall_s if wall_s > 0 else 0.0,
        "wall_s": round(wall_s, 3),
        "setup_s": round(setup_s, 3),
    }
    table = Table(
        ["pairs", "round trips", "errors", "rt/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [
            [
                str(options.pairs),
                str(len(samples)),
                str(sum(errors.values())),
                format_number(result["round_trips_per_s"]),
                format_number(latency.p50_ms),
                format_number(latency.p95_ms),
                format_number(latency.p99_ms),
                format_number(latency.max_ms),
            ]
        ],
    )
    verdict = "meets" if latency.p99_ms < TARGET_P99_MS else "misses"
    notes = [
        "Round trip: owner sends a command -> device's long-poll sync reads it -> device sends"
        " a result -> owner's long-poll sync reads the result.",
        f"p99 {format_number(latency.p99_ms)} ms {verdict} the target of {TARGET_P99_MS:.0f} ms.",
    ]
    if errors:
        notes.append(f"errors: {errors}")
    return Report(
        scenario="device_roundtrip",
        base_url=base_url,
        params=asdict(options),
        results=[result],
        table=table,
        notes=notes,
    )


SCENARIO = Scenario(
    name="device_roundtrip",
    help="device command round trip: owner -> device (sync) -> result -> owner (sync)",
    add_arguments=add_arguments,
    run=run,
)
