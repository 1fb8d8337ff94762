"""Who shares a room with whom, as presence needs it (presence itself is not in PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def joined_rooms_of(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Each user's joined rooms; users in none are left out."""
    rows = await conn.fetch(
        "SELECT user_id, room_id FROM room_members"
        " WHERE user_id = ANY($1::text[]) AND membership = 'join'",
        list(user_ids),
    )
    rooms: dict[str, list[str]] = {}
    for row in rows:
        rooms.setdefault(row["user_id"], []).append(row["room_id"])
    return rooms


async def joined_members_of(conn: asyncpg.Connection, room_ids: Sequence[str]) -> list[str]:
    """Everyone joined to any of the rooms, once each."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM room_members"
        " WHERE room_id = ANY($1::text[]) AND membership = 'join'",
        list(room_ids),
    )
    return [row["user_id"] for row in rows]
