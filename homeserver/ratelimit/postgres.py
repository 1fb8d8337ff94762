"""Buckets shared in PostgreSQL, for workers without Redis.

The same group commit as in Redis (ratelimit/redis.py): the checks that arrive
while one call is in flight go together in the next, one function call
(`ratelimit_take`, migrations/0022) on a connection of the limiter's own, with
PostgreSQL's clock. When PostgreSQL does not answer, each process limits on its
own until it does, as with Redis away.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.ratelimit.buckets import StoreUnavailable
from homeserver.ratelimit.redis import TIMEOUT_SECONDS, RedisBuckets
from homeserver.ratelimit.resp import Reply
from homeserver.store import ratelimit as ratelimit_store


class PostgresTake:
    """`TakeScript` over one PostgreSQL connection, made again when lost."""

    def __init__(self, dsn: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._dsn = dsn
        self._timeout = timeout_seconds
        self._conn: asyncpg.Connection | None = None

    async def run(self, keys: Sequence[str], args: Sequence[str]) -> Reply:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
            waits = await ratelimit_store.take(
                self._conn,
                keys,
                [float(args[4 * i]) for i in range(len(keys))],
                [float(args[4 * i + 1]) for i in range(len(keys))],
                [float(args[4 * i + 2]) for i in range(len(keys))],
                [args[4 * i + 3] == "1" for i in range(len(keys))],
                self._timeout,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self.close()
            raise StoreUnavailable(str(error) or type(error).__name__) from error
        except BaseException:
            await self.close()  # cancelled mid-call: the connection is in an unknown state
            raise
        return list(waits)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()


def postgres_buckets(dsn: str) -> RedisBuckets:
    """Shared buckets in the database at `dsn`."""
    return RedisBuckets("", "", script=PostgresTake(dsn), store_name="PostgreSQL")
