"""Connecting to PostgreSQL: a pool for a DSN, or an embedded server in the data directory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# What PostgreSQL being away looks like (restarting, unreachable, out of
# connections): a request that meets one is answered 503 with Retry-After, not 500.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, no socket file; asyncpg's "Multiple exceptions: ..."
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.CannotConnectNowError,  # starting up, shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # A connection left mid-operation when PostgreSQL went away under it.
    asyncpg.InternalClientError,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached now (not a bad query)."""
    return isinstance(error, UNAVAILABLE) and not isinstance(error, asyncpg.DataError)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset: we keep no session state (locks are transaction-scoped).

    asyncpg's default reset costs a round trip on every release of a connection.
    """


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
    assert pool is not None
    return pool


@asynccontextmanager
async def embedded_postgres(directory: Path) -> AsyncIterator[str]:
    """Start PostgreSQL from the `pgserver` package under `directory`; yields its DSN."""
    import pgserver  # imported here: only the embedded mode needs it

    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    start = pgserver.get_server  # type: ignore[attr-defined]
    server = await asyncio.to_thread(start, str(directory), cleanup_mode="stop")
    log.info("embedded PostgreSQL started in %s", directory)
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)
