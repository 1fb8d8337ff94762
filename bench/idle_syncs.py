"""Scenario `idle_syncs`: what many held, idle long-polls cost the server.

`--users` users (in no room, so nothing ever wakes them) share `--syncs`
long-polls (`timeout=--timeout-ms`) between them, opened at `--ramp` per
second. Once every poll is open (and, when the server's process ID is known,
the server holds that many more file descriptors) and `--settle` seconds have
passed, the server's resident memory is read from /proc/PID/status and
compared with the reading taken before the first poll. At that moment every
poll should still be pending: none errored, none returned (a return before its
timeout is a spurious wake-up). Then the polls are cancelled (their sockets
closed), and the server is watched until it has closed its ends too, up to
`--release-timeout`: a server that keeps serving a poll whose client hung up
holds its memory until the poll's own timeout. Closed sockets do not prove
the handlers stopped: a server may go on serving an abandoned poll (waiter,
timer, the response it will discard) until the timeout, which only its own
metrics or a slow shutdown reveal.

A poll that does return is renewed from its new `since`, as a client would,
and counted. Several polls per user, because registering thousands of users
means thousands of password hashes; the server caches access tokens, so a
token shared by 100 polls costs one lookup.

The server's process ID comes from `--spawn-server`, or `--server-pid` for a
server already running on this machine; without one only the client side is
reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from yarl import URL

from bench.client import TRANSPORT_ERRORS, Homeserver, MatrixClient
from bench.process import ProcessSample, ServerWatch, raise_open_files_limit, sample_process
from bench.report import Report, Table, format_number
from bench.scenario import Scenario, add_timeout_ms
from bench.stats import Outcomes

# Descriptors this process needs besides its sockets to the server.
SPARE_FDS = 256
# A poll answered in less than this share of its timeout was woken, not timed out.
EARLY_RETURN_SHARE = 0.9


@dataclass(frozen=True)
class IdleOptions:
    syncs: int
    users: int
    timeout_ms: int
    ramp: float
    settle_s: float
    release_timeout_s: float
    setup_parallel: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> IdleOptions:
        syncs = max(1, int(args.syncs))
        return cls(
            syncs=syncs,
            users=max(1, min(int(args.users), syncs)),
            timeout_ms=int(args.timeout_ms),
            ramp=float(args.ramp),
            settle_s=float(args.settle),
            release_timeout_s=(
                float(args.release_timeout)
                if args.release_timeout is not None
                else int(args.timeout_ms) / 1000 + 10
            ),
            setup_parallel=int(args.setup_parallel),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--syncs", type=int, default=5000, metavar="S", help="long-polls held (default 5000)"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=50,
        metavar="U",
        help="users sharing them, S/U polls each (default 50)",
    )
    add_timeout_ms(parser)
    parser.add_argument(
        "--ramp",
        type=float,
        default=1000.0,
        metavar="PER_S",
        help="polls opened per second (default 1000)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="pause once all polls are open, before reading memory (default 3)",
    )
    parser.add_argument(
        "--release-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after cancelling, wait at most this long for the server to close its sockets "
        "(default: the poll timeout + 10 s)",
    )
    parser.add_argument(
        "--setup-parallel",
        type=int,
        default=8,
        metavar="P",
        help="registrations and initial syncs in flight during setup (default 8)",
    )


class HeldPoll:
    """One long-poll slot, renewed from its new `since` whenever it returns."""

    def __init__(self, client: MatrixClient, since: str, timeout_ms: int) -> None:
        self.client = client
        self.since = since
        self.timeout_ms = timeout_ms
        self.in_flight = False
        self.returned = 0
        self.returned_early = 0
        self.outcomes = Outcomes()

    async def run(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            self.in_flight = True
            try:
                response = await self.client.sync_raw(since=self.since, timeout_ms=self.timeout_ms)
            except TRANSPORT_ERRORS as error:
                self.outcomes.record_exception(error)
                await asyncio.sleep(1.0)
                continue
            finally:
                self.in_flight = False
            self.outcomes.record(response)
            next_batch = response.body.get("next_batch")
            if not response.ok or not isinstance(next_batch, str):
                await asyncio.sleep(1.0)
                continue
            self.returned += 1
            if response.elapsed < self.timeout_ms / 1000 * EARLY_RETURN_SHARE:
                self.returned_early += 1
            self.since = next_batch


async def wait_until_held(polls: list[HeldPoll], watch: ServerWatch, timeout_s: float) -> float:
    """Wait until every poll is open client-side and the server holds that many connections.

    Setup's idle keep-alive sockets carry polls too, so once every poll is
    open the server holds exactly one connection per poll. The time waited.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if all(poll.in_flight for poll in polls):
            sample = watch.sample()
            if sample is None or sample.established >= len(polls):
                break
        await asyncio.sleep(0.25)
    return time.perf_counter() - started


async def wait_until_released(
    watch: ServerWatch, timeout_s: float
) -> tuple[ProcessSample | None, float | None]:
    """The server's state once it has closed every connection of ours (we closed them all).

    Returns the last reading and how long that took, or None for the time if
    it still held some after `timeout_s`.
    """
    started = time.perf_counter()
    sample = watch.sample()
    while sample is not None and time.perf_counter() - started < timeout_s:
        if sample.established + sample.close_wait == 0:
            return sample, time.perf_counter() - started
        await asyncio.sleep(0.5)
        sample = watch.sample()
    return sample, None


@dataclass
class HeldCount:
    pending: int
    errored_polls: int
    returned: int
    returned_early: int
    errors: Outcomes

    @classmethod
    def of(cls, polls: list[HeldPoll]) -> HeldCount:
        errors = Outcomes()
        for poll in polls:
            errors.merge(poll.outcomes)
        return cls(
            pending=sum(1 for poll in polls if poll.in_flight),
            errored_polls=sum(1 for poll in polls if poll.outcomes.error_count),
            returned=sum(poll.returned for poll in polls),
            returned_early=sum(poll.returned_early for poll in polls),
            errors=errors,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "polls_with_errors": self.errored_polls,
            "returned": self.returned,
            "returned_early": self.returned_early,
            "errors": dict(self.errors.errors),
            "error_examples": self.errors.examples,
        }


def _kib_delta(after: ProcessSample | None, before: ProcessSample | None) -> int | None:
    if after is None or before is None:
        return None
    return after.rss_kb - before.rss_kb


def build_table(
    options: IdleOptions,
    before: ProcessSample | None,
    held: ProcessSample | None,
    released: ProcessSample | None,
    count: HeldCount,
) -> Table:
    table = Table(
        [
            "syncs",
            "users",
            "pending",
            "errored",
            "returned",
            "rss before MiB",
            "rss held MiB",
            "delta MiB",
            "KiB/poll",
            "conns held",
            "rss after MiB",
            "conns after",
        ]
    )
    delta = _kib_delta(held, before)

    def mib(sample: ProcessSample | None) -> str:
        return format_number(sample.rss_kb / 1024 if sample else None, 1)

    table.rows.append(
        [
            str(options.syncs),
            str(options.users),
            str(count.pending),
            str(count.errored_polls),
            str(count.returned),
            mib(before),
            mib(held),
            format_number(delta / 1024 if delta is not None else None, 1),
            format_number(delta / options.syncs if delta is not None else None, 1),
            str(held.established) if held else "-",
            mib(released),
            str(released.established + released.close_wait) if released else "-",
        ]
    )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = IdleOptions.from_args(args)
    watch = ServerWatch(args.server_pid, URL(base_url).port)
    started_at = datetime.now(UTC)
    connections = options.syncs + options.setup_parallel + 8
    fd_limit = raise_open_files_limit(connections + SPARE_FDS)
    if fd_limit < connections + SPARE_FDS:
        raise SystemExit(
            f"open-files limit {fd_limit} is too low for {options.syncs} polls; "
            "raise the hard limit (ulimit -Hn) or pass fewer --syncs"
        )
    notes: list[str] = []
    if watch.pid is None:
        notes.append("no --server-pid: the server's memory and connections not measured.")
    elif watch.sample() is None:
        notes.append(f"cannot read /proc/{watch.pid}: the server not measured.")
        watch.pid = None

    async with Homeserver.connect(base_url, connections=connections) as server:
        setup_started = time.perf_counter()
        users = await server.register_many(options.users, parallel=options.setup_parallel)
        gate = asyncio.Semaphore(options.setup_parallel)

        async def first_since(user: MatrixClient) -> str:
            async with gate:
                return (await user.sync(timeout_ms=0)).next_batch

        tokens = await asyncio.gather(*(first_since(user) for user in users))
        setup_s = time.perf_counter() - setup_started
        await asyncio.sleep(1.0)
        before = watch.sample()
        client_before = sample_process(os.getpid())

        polls = [
            HeldPoll(users[i % len(users)], tokens[i % len(users)], options.timeout_ms)
            for i in range(options.syncs)
        ]
        timeout_s = options.timeout_ms / 1000
        ramp_s = options.syncs / options.ramp if options.ramp > 0 else 0.0
        deadline = time.perf_counter() + ramp_s + timeout_s * 2 + options.settle_s + 60
        tasks: list[asyncio.Task[None]] = []
        try:
            opened_at = time.perf_counter()
            for index, poll in enumerate(polls):
                if options.ramp > 0:
                    delay = opened_at + index / options.ramp - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(poll.run(deadline)))
            ramp_took_s = time.perf_counter() - opened_at
            waited_s = await wait_until_held(polls, watch, timeout_s / 2)
            settling = watch.sample()
            await asyncio.sleep(options.settle_s)
            held = watch.sample()
            client_held = sample_process(os.getpid())
            count = HeldCount.of(polls)
            measured_after_s = time.perf_counter() - opened_at
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
    released, released_after_s = await wait_until_released(watch, options.release_timeout_s)

    delta = _kib_delta(held, before)
    # Idle polls should cost no CPU: anything here is timers or polling in the server.
    idle_cpu_s = held.cpu_s - settling.cpu_s if held is not None and settling is not None else None
    notes = [
        f"setup {setup_s:.1f} s ({options.users} users, an initial sync each); "
        f"opened {options.syncs} polls in {ramp_took_s:.1f} s, all open after "
        f"{waited_s:.1f} s more, read {options.settle_s:.0f} s later "
        f"({measured_after_s:.1f} s after the first poll; timeout {timeout_s:.0f} s).",
        "pending: polls in flight at the reading; errored: polls that had failed; "
        f"returned: polls answered before the reading ({count.returned_early} well before "
        "their timeout, i.e. woken for nothing).",
        f"client (this process): rss {client_before.rss_kb / 1024:.1f} -> "
        f"{client_held.rss_kb / 1024:.1f} MiB, fds {client_before.open_fds} -> "
        f"{client_held.open_fds}.",
        *notes,
    ]
    if idle_cpu_s is not None:
        notes.append(
            f"server cpu while all polls were held: {idle_cpu_s:.2f} s over "
            f"{options.settle_s:.0f} s ({idle_cpu_s / options.settle_s:.0%} of a core)."
        )
    if released is not None:
        notes.append(
            f"after cancelling: the server closed all our connections in {released_after_s:.1f} s."
            if released_after_s is not None
            else f"after cancelling: {options.release_timeout_s:.0f} s later the server still "
            f"held {released.established} established and {released.close_wait} CLOSE_WAIT "
            "connections the client had closed."
        )
    notes.extend(f"sync: first {c}: {e}" for c, e in count.errors.examples.items())
    return Report(
        scenario="idle_syncs",
        base_url=base_url,
        params={**asdict(options), "server_pid": watch.pid},
        results=[
            {
                **count.as_json(),
                "server_before": before.as_json() if before else None,
                "server_held": held.as_json() if held else None,
                "server_released": released.as_json() if released else None,
                "released_after_s": (
                    round(released_after_s, 3) if released_after_s is not None else None
                ),
                "rss_delta_kb": delta,
                "server_cpu_while_held_s": (
                    round(idle_cpu_s, 3) if idle_cpu_s is not None else None
                ),
                "rss_kb_per_poll": round(delta / options.syncs, 2) if delta is not None else None,
                "client_before": client_before.as_json(),
                "client_held": client_held.as_json(),
                "setup_s": round(setup_s, 3),
                "ramp_s": round(ramp_took_s, 3),
                "wait_until_held_s": round(waited_s, 3),
                "measured_after_s": round(measured_after_s, 3),
            }
        ],
        table=build_table(options, before, held, released, count),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="idle_syncs",
    help="server memory while thousands of idle long-polls are held",
    add_arguments=add_arguments,
    run=run,
)
