"""Scenario `ratelimit`: what one rate-limit check costs, in this process and through Redis.

Like `audit`, this measures our own code rather than an HTTP server: it
imports `homeserver.ratelimit` and ignores `--base-url` and `--spawn-server`.
It times `RateLimiter.limit_user`, the call a handler makes before a send,
`--checks` times in a row on the event loop the server uses (uvloop), in
these cases:

- limits off (`rate_limits.enabled: false`): the call returns at once;
- exempt: an admin, asked of the exemption set and let through;
- local, allowed: buckets in this process, one user whose limit is never reached;
- local, allowed, 10,000 users: the same spread over many buckets;
- local, refused: the bucket is empty, so each call raises the 429 (caught);
- Redis, one at a time: one Lua script per check, each awaited before the
  next (the round trip to `--redis-url`, p50/p99 of single checks);
- Redis, 100 at once: 100 coroutines checking concurrently, as 100 senders
  would (checks/s; concurrent checks share script calls).

Each case reports wall µs per check and this process's CPU µs per check:
the CPU is what a server process spends (Redis's own work is not counted),
the rest of a Redis check's wall time is waiting for the round trip. The
Redis buckets live under a namespace of their own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bench.report import Report, Table, format_number
from bench.scenario import Scenario
from bench.stats import percentile

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONCURRENCY = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checks", type=int, default=200_000, help="checks per in-process case (200000)"
    )
    parser.add_argument(
        "--redis-checks", type=int, default=20_000, help="checks per Redis case (20000)"
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis for the shared buckets (default {DEFAULT_REDIS_URL}); empty: skip",
    )


async def _timed(checks: int, check: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """Microseconds per check over `checks` sequential calls: wall time, and this
    process's CPU time (what a server process would spend; the rest is waiting)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for n in range(checks):
        await check(n)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return wall / checks * 1e6, cpu / checks * 1e6


async def run(base_url: str, args: argparse.Namespace) -> Report:
    from homeserver.errors import MatrixError
    from homeserver.ratelimit.buckets import Limit
    from homeserver.ratelimit.limiter import Action, ExemptUsers, RateLimiter
    from homeserver.ratelimit.local import LocalBuckets
    from homeserver.ratelimit.redis import RedisBuckets

    never = {action: Limit(per_second=1e9, burst=1e9) for action in Action}
    empty = {action: Limit(per_second=1e-9, burst=1) for action in Action}
    admin = "@admin:bench"
    exempt = ExemptUsers([admin])
    rows: list[tuple[str, tuple[float, float], dict[str, Any]]] = []

    off = RateLimiter(None, LocalBuckets(), exempt)
    local = RateLimiter(never, LocalBuckets(), exempt)
    refusing = RateLimiter(empty, LocalBuckets(), exempt)
    await refusing.limit_user(Action.MESSAGE, "@alice:bench")
    users = [f"@user{n}:bench" for n in range(10_000)]

    async def refused(_: int) -> None:
        try:
            await refusing.limit_user(Action.MESSAGE, "@alice:bench")
        except MatrixError:
            return
        raise AssertionError("the check should have been refused")

    cases: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
        ("limits off", lambda _: off.limit_user(Action.MESSAGE, "@alice:bench")),
        ("exempt (admin)", lambda _: local.limit_user(Action.MESSAGE, admin)),
        ("local, allowed", lambda _: local.limit_user(Action.MESSAGE, "@alice:bench")),
        (
            "local, allowed, 10,000 users",
            lambda n: local.limit_user(Action.MESSAGE, users[n % len(users)]),
        ),
        ("local, refused (429 raised)", refused),
    ]
    for name, check in cases:
        await _timed(min(args.checks, 10_000), check)  # warm up
        rows.append((name, await _timed(args.checks, check), {}))

    notes: list[str] = []
    if args.redis_url:
        namespace = "bench-" + secrets.token_hex(6)
        buckets = RedisBuckets(args.redis_url, namespace)
        shared = RateLimiter(never, buckets, exempt)
        try:
            singles: list[float] = []

            async def one(n: int) -> None:
                started = time.perf_counter()
                await shared.limit_user(Action.MESSAGE, users[n % len(users)])
                singles.append(time.perf_counter() - started)

            await _timed(1000, one)  # warm up: connection, script load
            singles.clear()
            per_check = await _timed(args.redis_checks, one)
            singles.sort()
            p50, p99 = percentile(singles, 0.5) * 1e6, percentile(singles, 0.99) * 1e6
            rows.append(("Redis, one at a time", per_check, {"p50_us": p50, "p99_us": p99}))

            async def sender(index: int, count: int) -> None:
                for n in range(count):
                    await shared.limit_user(Action.MESSAGE, users[(index * count + n) % 10_000])

            each = max(1, args.redis_checks // CONCURRENCY)
            started, cpu_started = time.perf_counter(), time.process_time()
            await asyncio.gather(*(sender(i, each) for i in range(CONCURRENCY)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            total = each * CONCURRENCY
            rows.append(
                (
                    f"Redis, {CONCURRENCY} at once",
                    (elapsed / total * 1e6, cpu / total * 1e6),
                    {"checks_per_second": total / elapsed},
                )
            )
        finally:
            await shared.close()
            client = aioredis.Redis.from_url(args.redis_url)
            async for key in client.scan_iter(match=f"linkchat:{namespace}:*"):
                await client.delete(key)
            await client.aclose()
        notes.append(f"Redis {args.redis_url}, namespace linkchat:{namespace}: (deleted)")

    table = Table(["case", "µs per check", "cpu µs", "p50 µs", "p99 µs", "checks/s"])
    results: list[dict[str, Any]] = []
    for name, (micros, cpu_micros), extra in rows:
        checks_per_second = extra.get("checks_per_second", 1e6 / micros if micros else None)
        table.rows.append(
            [
                name,
                format_number(micros, 2),
                format_number(cpu_micros, 2),
                format_number(extra.get("p50_us"), 1),
                format_number(extra.get("p99_us"), 1),
                format_number(checks_per_second, 0),
            ]
        )
        results.append(
            {
                "case": name,
                "microseconds_per_check": micros,
                "cpu_microseconds_per_check": cpu_micros,
                **extra,
            }
        )
    notes.append(
        "µs per check: wall time over the checks made one after another (for 'at once',"
        " wall time over all checks); cpu µs: this process's CPU time per check (Redis's"
        " own is not counted); p50/p99: of single checks"
    )
    return Report(
        scenario="ratelimit",
        base_url="in process" + (f" and {args.redis_url}" if args.redis_url else ""),
        params={"checks": args.checks, "redis_checks": args.redis_checks},
        results=results,
        table=table,
        notes=notes,
    )


SCENARIO = Scenario(
    name="ratelimit",
    help="cost of one rate-limit check: in process (allowed, refused, exempt) and through Redis",
    add_arguments=add_arguments,
    run=run,
)
