"""Scenario `e2ee_room`: the first encrypted message to a big room, until every device holds
its room key; and the same message with encryption off.

`--members` users join one room (its creator, the sender, among them) and each logs in
`--devices` devices, which publish their identity keys and one-time keys
(POST /keys/upload) and hold long-poll syncs. A round, encrypted, is what an
Olm/Megolm client does for its first message to the room: one POST /keys/query for
every member, one POST /keys/claim of a one-time key for every other device, one
PUT /sendToDevice carrying a room key to each of them (ciphertext-sized, opaque to
the server), then the m.room.encrypted event. It lasts until the last device's sync
has delivered its to-device message (it holds the room key); the time of the last
device to have the room event too is reported. A round with encryption off sends an
m.room.message and lasts until the last device's sync has it.

Measured from the sender's start (before its query / before its send), per round:
the query, the claim, the to-device send, and when the last device held the key;
server CPU over the round. No real Olm here: the server never reads what it relays,
so the cost is the same for random bytes; the keys are signed for real.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from bench.client import CLIENT_V3, TRANSPORT_ERRORS, Homeserver, JsonDict, MatrixClient
from bench.process import ServerWatch
from bench.report import Report, Table, format_number
from bench.scenario import Scenario, add_timeout_ms
from bench.send import join_all

RUN_KEY = "com.linkchat.bench.run"
ROUND_KEY = "com.linkchat.bench.round"
MEGOLM = "m.megolm.v1.aes-sha2"
OLM = "m.olm.v1.curve25519-aes-sha2"


@dataclass(frozen=True)
class E2eeRoomOptions:
    members: int
    devices: int
    rounds: int
    round_timeout_s: float
    timeout_ms: int
    setup_parallel: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=100, help="room members (default 100)")
    parser.add_argument("--devices", type=int, default=2, help="devices per member (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each kind, encrypted and plain (default 3)"
    )
    parser.add_argument(
        "--round-timeout", type=float, default=30.0, metavar="SECONDS", help="(default 30)"
    )
    parser.add_argument(
        "--setup-parallel", type=int, default=10, help="setup requests at once (default 10)"
    )
    add_timeout_ms(parser)


def _opaque(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode().rstrip("=")


@dataclass
class Device:
    client: MatrixClient
    signing_key: Any = None
    since: str | None = None
    # Round -> perf_counter() when this device's sync delivered the room key / the event.
    key_at: dict[int, float] = field(default_factory=dict)
    event_at: dict[int, float] = field(default_factory=dict)
    polling: bool = False

    async def publish_keys(self, one_time_keys: int) -> None:
        self.signing_key = generate_signing_key(self.client.device_id)
        user, device = self.client.user_id, self.client.device_id
        public = encode_verify_key_base64(get_verify_key(self.signing_key))
        device_keys = sign_json(
            {
                "user_id": user,
                "device_id": device,
                "algorithms": [OLM, MEGOLM],
                "keys": {f"curve25519:{device}": _opaque(32), f"ed25519:{device}": public},
            },
            user,
            self.signing_key,
        )
        otks = {
            f"signed_curve25519:{n:06d}": sign_json({"key": _opaque(32)}, user, self.signing_key)
            for n in range(one_time_keys)
        }
        body = {"device_keys": device_keys, "one_time_keys": otks}
        await self._post("/keys/upload", body)

    async def _post(self, path: str, body: JsonDict) -> JsonDict:
        return (await self.client.request("POST", f"{CLIENT_V3}{path}", json_body=body)).expect_ok()

    async def poll(self, run_id: str, timeout_ms: int, deadline: float) -> None:
        """Sync in a loop as a client does, noting when each round's key and event arrive."""
        sync_filter = {"room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}}}
        while time.perf_counter() < deadline:
            self.polling = True
            try:
                response = await self.client.sync_raw(
                    since=self.since, timeout_ms=timeout_ms, sync_filter=sync_filter
                )
            except TRANSPORT_ERRORS:
                await asyncio.sleep(0.5)
                continue
            finally:
                self.polling = False
            now = time.perf_counter()
            if not response.ok:
                await asyncio.sleep(0.5)
                continue
            body = response.body
            self.since = body.get("next_batch", self.since)
            for event in (body.get("to_device") or {}).get("events", []):
                content = event.get("content") or {}
                if content.get(RUN_KEY) == run_id:
                    self.key_at.setdefault(int(content[ROUND_KEY]), now)
            for room in ((body.get("rooms") or {}).get("join") or {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    content = event.get("content") or {}
                    if content.get(RUN_KEY) == run_id:
                        self.event_at.setdefault(int(content[ROUND_KEY]), now)


@dataclass
class RoundResult:
    kind: str
    round: int
    query_s: float | None = None
    claim_s: float | None = None
    to_device_s: float | None = None
    keys_p50_s: float | None = None
    keys_last_s: float | None = None
    event_last_s: float | None = None
    missing: int = 0
    claimed: int = 0
    server_cpu_s: float | None = None
    error: str | None = None


async def _wait_polling(devices: list[Device], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and not all(d.polling for d in devices):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)


async def run_round(
    kind: str,
    number: int,
    sender: Device,
    receivers: list[Device],
    room_id: str,
    run_id: str,
    options: E2eeRoomOptions,
    watch: ServerWatch,
) -> RoundResult:
    await _wait_polling(receivers, options.round_timeout_s)
    result = RoundResult(kind, number)
    marker = {RUN_KEY: run_id, ROUND_KEY: number}
    before = watch.sample()
    started = time.perf_counter()
    try:
        if kind == "encrypted":
            users = sorted({d.client.user_id for d in receivers} | {sender.client.user_id})
            query = await sender._post("/keys/query", {"device_keys": {u: [] for u in users}})
            result.query_s = time.perf_counter() - started
            wanted: dict[str, dict[str, str]] = {}
            for user_id, devices in query["device_keys"].items():
                for device_id in devices:
                    if (user_id, device_id) != (sender.client.user_id, sender.client.device_id):
                        wanted.setdefault(user_id, {})[device_id] = "signed_curve25519"
            claimed = await sender._post("/keys/claim", {"one_time_keys": wanted})
            result.claim_s = time.perf_counter() - started
            result.claimed = sum(len(d) for d in claimed["one_time_keys"].values())
            messages = {
                user_id: {
                    device_id: {
                        "algorithm": OLM,
                        "sender_key": _opaque(32),
                        "ciphertext": {_opaque(32): {"type": 0, "body": _opaque(600)}},
                        **marker,
                    }
                    for device_id in devices
                }
                for user_id, devices in claimed["one_time_keys"].items()
            }
            path = f"{CLIENT_V3}/sendToDevice/m.room.encrypted/{secrets.token_hex(8)}"
            (await sender.client.request("PUT", path, json_body={"messages": messages})).expect_ok()
            result.to_device_s = time.perf_counter() - started
            content: JsonDict = {
                "algorithm": MEGOLM,
                "ciphertext": _opaque(300),
                "sender_key": _opaque(32),
                "session_id": _opaque(32),
                "device_id": sender.client.device_id,
                **marker,
            }
            sent = await sender.client.send_event(room_id, "m.room.encrypted", content)
        else:
            content = {"msgtype": "m.text", "body": f"plain round {number}", **marker}
            sent = await sender.client.send_event(room_id, "m.room.message", content)
        if not sent.ok:
            result.error = f"send {sent.status} {sent.body}"
    except Exception as error:  # a setup-like failure: report it, keep the run going
        result.error = f"{type(error).__name__}: {error}"
    deadline = started + options.round_timeout_s
    arrivals = (lambda d: d.key_at) if kind == "encrypted" else (lambda d: d.event_at)
    while result.error is None and time.perf_counter() < deadline:
        if all(number in arrivals(d) and number in d.event_at for d in receivers):
            break
        await asyncio.sleep(0.01)
    after = watch.sample()
    keys = [arrivals(d)[number] - started for d in receivers if number in arrivals(d)]
    events = [d.event_at[number] - started for d in receivers if number in d.event_at]
    result.missing = len(receivers) - len(keys)
    result.keys_last_s = max(keys) if keys else None
    result.keys_p50_s = sorted(keys)[len(keys) // 2] if keys else None
    result.event_last_s = max(events) if events else None
    if before is not None and after is not None:
        result.server_cpu_s = after.cpu_s - before.cpu_s
    return result


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = E2eeRoomOptions(
        members=max(2, int(args.members)),
        devices=max(1, int(args.devices)),
        rounds=max(1, int(args.rounds)),
        round_timeout_s=float(args.round_timeout),
        timeout_ms=int(args.timeout_ms),
        setup_parallel=int(args.setup_parallel),
    )
    started_at = datetime.now(UTC)
    run_id = secrets.token_hex(4)
    watch = ServerWatch(args.server_pid, None)
    connections = options.members * options.devices + options.setup_parallel + 8
    async with Homeserver.connect(base_url, connections=connections) as server:
        setup_started = time.perf_counter()
        owner = await server.register(prefix="bench_e2ee_sender")
        room_id = await owner.create_room(
            preset="public_chat",
            name="bench e2ee",
            extra={
                "initial_state": [{"type": "m.room.encryption", "content": {"algorithm": MEGOLM}}]
            },
        )
        others = await server.register_many(
            options.members - 1, parallel=options.setup_parallel, prefix="bench_e2ee"
        )
        await join_all(others, room_id, options.setup_parallel)
        gate = asyncio.Semaphore(options.setup_parallel)

        async def more_devices(member: MatrixClient) -> list[MatrixClient]:
            async with gate:
                return [
                    await server.login(member.user_id, member.password or "")
                    for _ in range(options.devices - 1)
                ]

        # Every member's other devices get the key, the sender's own other devices too.
        logged_in = await asyncio.gather(*(more_devices(member) for member in [owner, *others]))
        receivers = [Device(member) for member in others]
        receivers += [Device(client) for clients in logged_in for client in clients]
        sender = Device(owner)

        async def publish(device: Device) -> None:
            async with gate:
                await device.publish_keys(one_time_keys=options.rounds + 2)

        await asyncio.gather(*(publish(device) for device in [sender, *receivers]))
        for device in receivers:
            device.since = (await device.client.sync_raw(timeout_ms=0)).expect_ok()["next_batch"]
        setup_s = time.perf_counter() - setup_started

        deadline = time.perf_counter() + options.rounds * 2 * (options.round_timeout_s + 5) + 60
        tasks = [
            asyncio.create_task(device.poll(run_id, options.timeout_ms, deadline))
            for device in receivers
        ]
        rounds: list[RoundResult] = []
        try:
            for number in range(options.rounds * 2):
                kind = "encrypted" if number % 2 == 0 else "plain"
                rounds.append(
                    await run_round(
                        kind, number, sender, receivers, room_id, run_id, options, watch
                    )
                )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def ms(value: float | None) -> str:
        return format_number(value * 1000 if value is not None else None)

    table = Table(
        headers=[
            "round",
            "kind",
            "query ms",
            "claim ms",
            "to-device ms",
            "p50 key ms",
            "last key ms",
            "last event ms",
            "missing",
            "server cpu ms",
        ]
    )
    for r in rounds:
        table.rows.append(
            [
                str(r.round),
                r.kind,
                ms(r.query_s),
                ms(r.claim_s),
                ms(r.to_device_s),
                ms(r.keys_p50_s) if r.kind == "encrypted" else "-",
                ms(r.keys_last_s) if r.kind == "encrypted" else "-",
                ms(r.event_last_s),
                str(r.missing),
                ms(r.server_cpu_s),
            ]
        )
    devices = len(receivers)
    notes = [
        f"{options.members} members, {devices} receiving devices (the sender's own is the "
        f"only one left out); setup {setup_s:.1f} s.",
        "Times are from the sender's start (its /keys/query when encrypted, its send when "
        "plain), cumulative: query, claim and to-device are when each request was answered; "
        "last key: the last device's sync delivering its room key (to-device); last event: "
        "the last device's sync delivering the room event.",
        "errors: "
        + (", ".join(f"round {r.round}: {r.error}" for r in rounds if r.error) or "none"),
    ]
    return Report(
        scenario="e2ee_room",
        base_url=base_url,
        params={**asdict(options), "room_id": room_id},
        results=[asdict(r) for r in rounds],
        table=table,
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="e2ee_room",
    help="first encrypted message to a room of 100 members with 2 devices each, against plain",
    add_arguments=add_arguments,
    run=run,
)
