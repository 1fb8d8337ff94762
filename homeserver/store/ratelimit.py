"""Rate-limit buckets shared in PostgreSQL (workers without Redis): one function call per batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def take(
    conn: asyncpg.Connection,
    names: Sequence[str],
    rates: Sequence[float],
    bursts: Sequence[float],
    costs: Sequence[float],
    forced: Sequence[bool],
    timeout_seconds: float,
) -> list[int]:
    """Per bucket, 0 when its cost was taken, else the milliseconds to wait
    (migrations/0022: ratelimit_take mirrors ratelimit/buckets.take)."""
    waits = await conn.fetchval(
        "SELECT ratelimit_take($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::bool[])",
        list(names),
        list(rates),
        list(bursts),
        list(costs),
        list(forced),
        timeout=timeout_seconds,
    )
    return [int(wait) for wait in waits]
