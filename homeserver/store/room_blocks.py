"""Blocked and purged rooms (`blocked_rooms`, `purged_rooms`: projections of the
moderation chain)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def blocked_by(conn: asyncpg.Connection, room_id: str) -> str | None:
    """The admin who blocked the room; None if it is not blocked."""
    found = await conn.fetchval("SELECT blocked_by FROM blocked_rooms WHERE room_id = $1", room_id)
    return str(found) if found is not None else None


async def closed_among(conn: asyncpg.Connection, room_ids: Sequence[str]) -> set[str]:
    """Those of the rooms nobody may enter: blocked or purged."""
    rows = await conn.fetch(
        "SELECT room_id FROM blocked_rooms WHERE room_id = ANY($1::text[])"
        " UNION SELECT room_id FROM purged_rooms WHERE room_id = ANY($1::text[])",
        list(room_ids),
    )
    return {row["room_id"] for row in rows}


async def purged_among(conn: asyncpg.Connection, room_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT room_id FROM purged_rooms WHERE room_id = ANY($1::text[])", list(room_ids)
    )
    return {row["room_id"] for row in rows}
