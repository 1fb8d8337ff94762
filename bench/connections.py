"""Scenario `connections`: many idle long-polls and sync streams, and one message to all.

`--users` users join one room; between them they hold `--long-polls` idle
`/sync` long-polls (`timeout=--timeout-ms`, the server's 5-minute maximum by
default, renewed when they end) and `--streams` sync-stream WebSockets
(`/_linkchat/v1/sync/stream`). The sockets are held by `--holders` helper
processes (`bench/holder.py`), each connecting from its own source address.

Measured on the server (every process of its tree, so a supervisor's workers
count; `--spawn-server` passes its pid, `--server-pid` for one already running):

1. resident memory before, with every long-poll held, and with every stream
   held too: the increase per connection of each kind;
2. CPU while everything is held and nothing happens, over `--idle` seconds
   (the server pings each WebSocket every 20 s; nothing else should run);
3. `--rounds` times: one message sent into the room, and the time until each
   connection has it (taken in the holder when the last byte of the answer
   was read), with the server's CPU over the round. Between rounds, every
   long-poll is open again (re-polled from its new `since`).

All figures come from one machine that also runs the load generator: its
CPU use (the holders parse every answer) is reported next to the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yarl import URL

from bench.client import Homeserver, MatrixClient
from bench.process import ProcessSample, open_fds, process_tree, sample_process, tcp_states
from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.send import join_all
from bench.stats import percentile

# The server answers a long-poll after at most 5 minutes (api/sync.py).
DEFAULT_TIMEOUT_MS = 300_000
# The checkout holding `bench/`: where `python -m bench.holder` runs.
BENCH_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ConnectionOptions:
    long_polls: int
    streams: int
    users: int
    holders: int
    ramp: float
    settle_s: float
    idle_s: float
    rounds: int
    round_timeout_s: float
    timeout_ms: int
    setup_parallel: int
    open_timeout_s: float
    batch: int
    batch_timeout_s: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ConnectionOptions:
        return cls(
            long_polls=max(0, int(args.long_polls)),
            streams=max(0, int(args.streams)),
            users=max(1, int(args.users)),
            holders=max(1, int(args.holders)),
            ramp=float(args.ramp),
            settle_s=float(args.settle),
            idle_s=float(args.idle),
            rounds=max(0, int(args.rounds)),
            round_timeout_s=float(args.round_timeout),
            timeout_ms=int(args.timeout_ms),
            setup_parallel=int(args.setup_parallel),
            open_timeout_s=float(args.open_timeout),
            batch=max(1, int(args.batch)),
            batch_timeout_s=float(args.batch_timeout),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def option(name: str, kind: type, default: Any, text: str) -> None:
        parser.add_argument(name, type=kind, default=default, help=f"{text} (default {default})")

    option("--long-polls", int, 20_000, "idle /sync long-polls held")
    option("--streams", int, 5_000, "sync-stream WebSockets held")
    option("--users", int, 500, "users sharing them, all in one room")
    option("--holders", int, 2, "helper processes holding the sockets")
    option("--ramp", float, 1000.0, "connections opened per second, over all holders")
    option("--settle", float, 5.0, "pause after opening, before reading memory")
    option("--idle", float, 30.0, "seconds of idle CPU measured with everything held")
    option("--rounds", int, 3, "messages sent, each to every connection")
    option("--round-timeout", float, 120.0, "give up on a round's stragglers after this")
    option("--timeout-ms", int, DEFAULT_TIMEOUT_MS, "long-poll timeout")
    option("--setup-parallel", int, 8, "registrations and joins in flight during setup")
    option("--open-timeout", float, 600.0, "wait at most this long for the server to hold all")
    option("--batch", int, 1000, "connections opened before waiting for the server to hold them")
    option("--batch-timeout", float, 120.0, "wait at most this long for a batch to be held")


# --- the server: every process of its tree -------------------------------------------------


@dataclass(frozen=True)
class TreeSample:
    at: float
    processes: dict[int, ProcessSample]

    @property
    def rss_kb(self) -> int:
        return sum(sample.rss_kb for sample in self.processes.values())

    @property
    def cpu_s(self) -> float:
        return sum(sample.cpu_s for sample in self.processes.values())

    @property
    def established(self) -> int:
        return sum(sample.established for sample in self.processes.values())

    def as_json(self) -> dict[str, Any]:
        return {str(pid): sample.as_json() for pid, sample in self.processes.items()}


class ServerTree:
    def __init__(self, pid: int | None, port: int | None) -> None:
        self.pid = pid
        self.port = port

    def sample(self) -> TreeSample | None:
        if self.pid is None:
            return None
        samples = {}
        try:
            states = tcp_states(self.pid, self.port) if self.port else None
        except OSError:
            return None
        for pid in process_tree(self.pid):
            try:
                samples[pid] = sample_process(pid, self.port, states)
            except OSError:
                continue
        return TreeSample(time.perf_counter(), samples) if samples else None

    def open_fds(self) -> int | None:
        """The descriptors the whole tree holds (cheap, unlike `sample`)."""
        if self.pid is None:
            return None
        total = 0
        for pid in process_tree(self.pid):
            try:
                total += open_fds(pid)
            except OSError:
                continue
        return total

    async def wait_for_connections(self, wanted: int, timeout_s: float) -> TreeSample | None:
        """Until the tree has `wanted` connections established. Waits on the cheap
        descriptor count first: reading the TCP table takes a good part of a second
        of CPU with 25,000 connections, which a busy machine takes from the server."""
        deadline = time.perf_counter() + timeout_s
        sample = self.sample()
        while sample is not None and sample.established < wanted:
            if time.perf_counter() > deadline:
                break
            fds = sum(p.open_fds for p in sample.processes.values())
            while (now := self.open_fds()) is not None and now < fds + wanted - sample.established:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(1.0)
            await asyncio.sleep(1.0)
            sample = self.sample()
        return sample


# --- the holders ---------------------------------------------------------------------------


class Holder:
    """One `bench.holder` process and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, job: dict[str, Any]) -> Holder:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.holder",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=BENCH_ROOT,
            limit=2**26,
        )
        holder = cls(process)
        assert process.stdin is not None
        process.stdin.write(json.dumps(job).encode() + b"\n")
        await holder._read("ready")
        return holder

    async def _read(self, event: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"holder {self.process.pid} exited")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("event") != event:
            raise RuntimeError(f"holder said {reply}, expected {event}")
        return reply

    async def ask(self, command: dict[str, Any], event: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read(event)

    async def close(self) -> None:
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.ask({"do": "close"}, "closed"), 60)
            except (RuntimeError, TimeoutError, ConnectionError):
                self.process.kill()
            await self.process.wait()


async def ask_all(holders: list[Holder], command: dict[str, Any], event: str) -> list[Any]:
    return list(await asyncio.gather(*(holder.ask(command, event) for holder in holders)))


async def open_paced(
    holders: list[Holder], kind: str, total: int, tree: ServerTree, options: ConnectionOptions
) -> list[str]:
    """Open `total` connections of `kind` (`polls`, `streams`) `--batch` at a time, the
    next batch once the server holds the previous one (its descriptors tell); notes
    of the batches that were not held within `--batch-timeout`.

    Clients that open connections faster than the server accepts them fill its
    listen queues (2,048 per worker); then the kernel drops their handshakes, they
    retry after 1, 2, 4... s, give up, and the server accepts dead connections
    one by one: a run that collapses measures the pile-up, not the server. Real
    clients reconnect spread out in time (backoff, and the ingress in front)."""
    notes: list[str] = []
    baseline = tree.open_fds()
    opened = 0
    while opened < total:
        batch = min(options.batch, total - opened)
        shares = [
            batch // len(holders) + (1 if index < batch % len(holders) else 0)
            for index in range(len(holders))
        ]
        await asyncio.gather(
            *(
                holder.ask({"do": f"open_{kind}", "count": share}, f"{kind}_open")
                for holder, share in zip(holders, shares, strict=True)
            )
        )
        opened += batch
        if baseline is None:
            continue
        started = time.perf_counter()
        # A few connections may still be retrying; the rest must be held.
        while (fds := tree.open_fds()) is not None and fds < baseline + opened * 0.98:
            if time.perf_counter() - started > options.batch_timeout_s:
                notes.append(
                    f"{kind}: the server held {fds - baseline} of {opened} opened after"
                    f" {options.batch_timeout_s:.0f} s; opening the next batch anyway"
                )
                break
            await asyncio.sleep(0.5)
    # Whatever a holder has left (the batches are split evenly; its share may not be).
    await ask_all(holders, {"do": f"open_{kind}"}, f"{kind}_open")
    return notes


# Long-polls that may be between an answer and the next poll when a round starts: a
# user's own presence changes (idle after a minute, unavailable after five) answer
# their 40 polls now and then, so with 20,000 held a few are always on their way back.
# One of those still gets the round's message (its next poll starts before it).
POLLS_IN_PASSING = 0.005


async def wait_until_pending(holders: list[Holder], polls: int, timeout_s: float) -> float:
    """Wait until (nearly) every long-poll is in flight again; the time waited."""
    started = time.perf_counter()
    wanted = polls - int(polls * POLLS_IN_PASSING)
    while time.perf_counter() - started < timeout_s:
        statuses = await ask_all(holders, {"do": "status"}, "status")
        if sum(status["polls_pending"] for status in statuses) >= wanted:
            break
        await asyncio.sleep(0.25)
    return time.perf_counter() - started


# --- the run -------------------------------------------------------------------------------


@dataclass
class FanoutRound:
    round: int
    arrivals_s: list[float]
    missing_polls: int
    missing_streams: int
    poll_last_s: float | None
    stream_last_s: float | None
    send_ms: float
    server_cpu_s: float | None
    holders_cpu_s: float

    def as_json(self) -> dict[str, Any]:
        times = sorted(self.arrivals_s)
        return {
            "round": self.round,
            "received": len(times),
            "missing_polls": self.missing_polls,
            "missing_streams": self.missing_streams,
            "p50_ms": round(percentile(times, 0.5) * 1000, 1) if times else None,
            "p99_ms": round(percentile(times, 0.99) * 1000, 1) if times else None,
            "last_ms": round(times[-1] * 1000, 1) if times else None,
            "last_poll_ms": _ms(self.poll_last_s),
            "last_stream_ms": _ms(self.stream_last_s),
            "send_ms": round(self.send_ms, 1),
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 3),
            "holders_cpu_s": round(self.holders_cpu_s, 3),
        }


def _held(sample: TreeSample | None) -> str:
    return "-" if sample is None else str(sample.established)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def fanout_round(
    number: int,
    sender: MatrixClient,
    room_id: str,
    holders: list[Holder],
    tree: ServerTree,
    options: ConnectionOptions,
) -> FanoutRound:
    marker = f"fanout-{secrets.token_hex(6)}-{number}"
    await ask_all(holders, {"do": "watch", "marker": marker}, "watching")
    before = tree.sample()
    holders_before = sum(s["cpu_s"] for s in await ask_all(holders, {"do": "status"}, "status"))
    sent_at = time.perf_counter()
    response = await sender.send_message(room_id, marker)
    send_ms = (time.perf_counter() - sent_at) * 1000
    response.expect_ok()
    replies = await ask_all(
        holders, {"do": "await", "marker": marker, "timeout": options.round_timeout_s}, "arrivals"
    )
    after = tree.sample()
    holders_after = sum(s["cpu_s"] for s in await ask_all(holders, {"do": "status"}, "status"))
    polls = [at - sent_at for reply in replies for at in reply["polls"]]
    streams = [at - sent_at for reply in replies for at in reply["streams"]]
    return FanoutRound(
        round=number,
        arrivals_s=polls + streams,
        missing_polls=sum(reply["missing_polls"] for reply in replies),
        missing_streams=sum(reply["missing_streams"] for reply in replies),
        poll_last_s=max(polls, default=None),
        stream_last_s=max(streams, default=None),
        send_ms=send_ms,
        server_cpu_s=after.cpu_s - before.cpu_s if after and before else None,
        holders_cpu_s=holders_after - holders_before,
    )


def _per_connection_kib(after: TreeSample | None, before: TreeSample | None) -> float | None:
    """The RSS increase per connection the server accepted in between (by its sockets,
    not by what the holders asked for: on a busy machine a few may still be opening)."""
    if after is None or before is None or after.established <= before.established:
        return None
    return (after.rss_kb - before.rss_kb) / (after.established - before.established)


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = ConnectionOptions.from_args(args)
    tree = ServerTree(args.server_pid, URL(base_url).port)
    started_at = datetime.now(UTC)
    notes: list[str] = []
    if tree.pid is None:
        notes.append("no --server-pid: the server's memory and CPU not measured.")

    async with Homeserver.connect(base_url, connections=options.setup_parallel + 4) as server:
        setup_started = time.perf_counter()
        users = await server.register_many(options.users, parallel=options.setup_parallel)
        room_id = await users[0].create_room(preset="public_chat")
        await join_all(users[1:], room_id, options.setup_parallel)
        gate = asyncio.Semaphore(options.setup_parallel)

        async def since_of(user: MatrixClient) -> str:
            async with gate:
                return (await user.sync(timeout_ms=0)).next_batch

        sinces = await asyncio.gather(*(since_of(user) for user in users))
        setup_s = time.perf_counter() - setup_started

        def slots(count: int) -> list[list[str]]:
            return [
                [users[i % len(users)].access_token, sinces[i % len(users)]] for i in range(count)
            ]

        polls, streams = slots(options.long_polls), slots(options.streams)
        ramp = options.ramp / options.holders
        holders = await asyncio.gather(
            *(
                Holder.start(
                    {
                        "base_url": base_url,
                        "local_host": f"127.0.0.{2 + index}",
                        "timeout_ms": options.timeout_ms,
                        "ramp": ramp,
                        "polls": polls[index :: options.holders],
                        "streams": streams[index :: options.holders],
                    }
                )
                for index in range(options.holders)
            )
        )
        try:
            await asyncio.sleep(1.0)
            before = tree.sample()
            opened = time.perf_counter()
            notes += await open_paced(holders, "polls", options.long_polls, tree, options)
            await tree.wait_for_connections(options.long_polls, options.open_timeout_s)
            await wait_until_pending(holders, options.long_polls, options.open_timeout_s)
            polls_open_s = time.perf_counter() - opened
            await asyncio.sleep(options.settle_s)
            with_polls = tree.sample()
            opened = time.perf_counter()
            notes += await open_paced(holders, "streams", options.streams, tree, options)
            await tree.wait_for_connections(
                options.long_polls + options.streams, options.open_timeout_s
            )
            streams_open_s = time.perf_counter() - opened
            await asyncio.sleep(options.settle_s)
            with_all = tree.sample()
            idle_start = tree.sample()
            statuses_start = await ask_all(holders, {"do": "status"}, "status")
            await asyncio.sleep(options.idle_s)
            idle_end = tree.sample()
            statuses_end = await ask_all(holders, {"do": "status"}, "status")
            rounds = []
            for number in range(1, options.rounds + 1):
                waited = await wait_until_pending(holders, options.long_polls, 120)
                await asyncio.sleep(2.0)
                result = await fanout_round(number, users[0], room_id, holders, tree, options)
                rounds.append((result, waited))
            final = await ask_all(holders, {"do": "status"}, "status")
        finally:
            await asyncio.gather(*(holder.close() for holder in holders))

    idle_cpu_s = None
    if idle_end is not None and idle_start is not None:
        idle_cpu_s = idle_end.cpu_s - idle_start.cpu_s
    answers_while_idle = sum(s["counts"].get("poll_answers", 0) for s in statuses_end) - sum(
        s["counts"].get("poll_answers", 0) for s in statuses_start
    )
    holders_idle_cpu = sum(s["cpu_s"] for s in statuses_end) - sum(
        s["cpu_s"] for s in statuses_start
    )
    per_poll = _per_connection_kib(with_polls, before)
    per_stream = _per_connection_kib(with_all, with_polls)
    table = Table(["round", "received", "missing", "p50 ms", "p99 ms", "last ms", "server cpu s"])
    for result, _ in rounds:
        row = result.as_json()
        table.rows.append(
            [
                str(result.round),
                str(row["received"]),
                str(result.missing_polls + result.missing_streams),
                format_number(row["p50_ms"]),
                format_number(row["p99_ms"]),
                format_number(row["last_ms"]),
                format_number(row["server_cpu_s"], 2),
            ]
        )

    def mib(sample: TreeSample | None) -> str:
        return format_number(sample.rss_kb / 1024 if sample else None, 1)

    per_process = (
        ", ".join(
            f"pid {pid}: {p.established} conns, {p.rss_kb / 1024:.0f} MiB"
            for pid, p in with_all.processes.items()
        )
        if with_all
        else "-"
    )
    notes = [
        f"setup {setup_s:.1f} s: {options.users} users joined one room; "
        f"{options.long_polls} long-polls open in {polls_open_s:.1f} s, "
        f"{options.streams} streams in {streams_open_s:.1f} s, over {options.holders} holders; "
        f"the server held {_held(with_polls)} connections, then {_held(with_all)}.",
        f"server RSS: {mib(before)} MiB before, {mib(with_polls)} with the long-polls, "
        f"{mib(with_all)} with the streams too: {format_number(per_poll, 1)} KiB per long-poll, "
        f"{format_number(per_stream, 1)} KiB per stream.",
        f"server processes: {per_process}.",
        (
            f"idle: server CPU {idle_cpu_s:.2f} s over {options.idle_s:.0f} s "
            f"({idle_cpu_s / options.idle_s:.1%} of one core); {answers_while_idle} long-polls "
            f"answered meanwhile; holders' CPU {holders_idle_cpu:.2f} s."
            if idle_cpu_s is not None
            else "idle: server CPU not measured."
        ),
        *(
            f"round {result.round}: last long-poll {format_number(_ms(result.poll_last_s))} ms, "
            f"last stream {format_number(_ms(result.stream_last_s))} ms; the send answered in "
            f"{result.send_ms:.0f} ms; holders' CPU {result.holders_cpu_s:.2f} s; polls all open "
            f"again {waited:.1f} s before it."
            for result, waited in rounds
        ),
        "errors: "
        + json.dumps(
            {
                key: sum(s["counts"].get(key, 0) for s in final)
                for key in sorted(
                    {"poll_errors", "stream_errors", "stream_closed"}
                    | {k for s in final for k in s["counts"] if "status" in k or "failed" in k}
                )
            }
        ),
        *notes,
    ]
    return Report(
        scenario="connections",
        base_url=base_url,
        params={**asdict(options), "server_pid": tree.pid},
        results=[
            {
                "server_before": before.as_json() if before else None,
                "server_with_polls": with_polls.as_json() if with_polls else None,
                "server_with_all": with_all.as_json() if with_all else None,
                "rss_kib_per_long_poll": per_poll,
                "rss_kib_per_stream": per_stream,
                "idle_server_cpu_s": idle_cpu_s,
                "idle_s": options.idle_s,
                "answers_while_idle": answers_while_idle,
                "rounds": [result.as_json() for result, _ in rounds],
                "setup_s": round(setup_s, 1),
            }
        ],
        table=table,
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="connections",
    help="memory and idle CPU of 20,000 long-polls and 5,000 sync streams; fan-out to all",
    add_arguments=add_arguments,
    run=run,
)
