"""Read receipts (a projection of the account chains) and the relations they are checked against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

PRIVATE_READ = "m.read.private"


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    room_id: str
    user_id: str
    receipt_type: str
    thread_id: str  # "" when unthreaded
    event_id: str
    ts: int


async def receipt_event_position(
    conn: asyncpg.Connection, room_id: str, user_id: str, receipt_type: str, thread_id: str
) -> int | None:
    """Log position of the event the user's current receipt of this kind points at."""
    position = await conn.fetchval(
        "SELECT e.stream_position FROM receipts r JOIN events e ON e.event_id = r.event_id"
        " WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type = $3 AND r.thread_id = $4",
        room_id,
        user_id,
        receipt_type,
        thread_id,
    )
    return int(position) if position is not None else None


async def receipts_between(
    conn: asyncpg.Connection,
    room_ids: Sequence[str],
    viewer: str,
    since: int | None,
    until: int,
) -> list[ReceiptRow]:
    """Receipts in `room_ids` written in (since, until]; private ones only the viewer's own."""
    rows = await conn.fetch(
        "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts"
        " WHERE room_id = ANY($1::text[]) AND stream_position > $2 AND stream_position <= $3"
        " AND (receipt_type <> $4 OR user_id = $5)"
        " ORDER BY room_id, stream_position",
        list(room_ids),
        since if since is not None else -1,
        until,
        PRIVATE_READ,
        viewer,
    )
    return [
        ReceiptRow(
            r["room_id"], r["user_id"], r["receipt_type"], r["thread_id"], r["event_id"], r["ts"]
        )
        for r in rows
    ]


async def relation_of(conn: asyncpg.Connection, event_id: str) -> tuple[str, str] | None:
    """(target event ID, rel_type) of an event's m.relates_to, if it has one."""
    row = await conn.fetchrow(
        "SELECT relates_to, rel_type FROM event_relations WHERE event_id = $1", event_id
    )
    return (row["relates_to"], row["rel_type"]) if row is not None else None
