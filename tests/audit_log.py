"""The audit checks as the tests run them against a database: verify and replay."""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.api.app_keys import SIGNING_KEYS
from homeserver.audit.replay import ReplayResult, replay
from homeserver.audit.verify import Failure, LogVerifier, verify_database
from tests.matrix import MatrixClient


def server_verifier(hs: MatrixClient) -> LogVerifier:
    """A verifier holding the running server's keys."""
    ring = hs.app[SIGNING_KEYS].ring
    return LogVerifier(ring.server_name, ring.keys)


async def verify(
    dsn: str, verifier: LogVerifier, room: str | None = None, since: int = 0, **options: Any
) -> Failure | None:
    """`audit verify` over the database; in-process (no workers) unless `options` say."""
    conn = await asyncpg.connect(dsn)
    try:
        return await verify_database(conn, verifier, room, since, **{"workers": 0, **options})
    finally:
        await conn.close()


async def replayed(dsn: str, **options: Any) -> ReplayResult:
    """`audit replay` of the database's log into a scratch schema."""
    conn = await asyncpg.connect(dsn)
    try:
        return await replay(conn, **options)
    finally:
        await conn.close()


async def assert_replay_identical(dsn: str) -> ReplayResult:
    result = await replayed(dsn)
    assert result.identical, "\n".join(d.describe() for d in result.differences)
    return result
