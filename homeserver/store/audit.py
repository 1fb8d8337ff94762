"""Reading the whole log in order, in batches, for the auditor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.model import JsonDict


async def log_in_order(
    conn: asyncpg.Connection, since: int = 0, batch: int = 5_000
) -> AsyncIterator[tuple[int, str, JsonDict]]:
    """(position, event ID, logged event) from `since` onwards, a batch at a time."""
    after = since
    while True:
        rows = await conn.fetch(
            "SELECT stream_position, event_id, json FROM events"
            " WHERE stream_position > $1 ORDER BY stream_position LIMIT $2",
            after,
            batch,
        )
        if not rows:
            return
        for row in rows:
            yield row["stream_position"], row["event_id"], decode(row["json"])
        after = rows[-1]["stream_position"]


async def chain_heads_at(conn: asyncpg.Connection, position: int) -> dict[str, str]:
    """The last event of every chain as of `position` (to verify from the middle of the log)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (room_id) room_id, event_id FROM events"
        " WHERE stream_position <= $1 ORDER BY room_id, stream_position DESC",
        position,
    )
    return {row["room_id"]: row["event_id"] for row in rows}
