"""Who shares a room with whom, as presence needs it (presence itself is not in PostgreSQL).

Presence is shared through the rooms that share it: not broadcast channels
(subscribers are not each other's contacts) and not rooms with more than
`max_members` joined members (each change would wake every member's sync).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.events import types
from homeserver.store.results import fetch_column


def _shares_presence(room: str) -> str:
    """SQL: the room `room` is not a channel ($3) and has at most $2 joined members
    (counted only up to $2 + 1)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM rooms r WHERE r.room_id = {room}"
        "   AND r.room_type = $3)"
        " AND (SELECT count(*) FROM (SELECT 1 FROM room_members c"
        f"   WHERE c.room_id = {room} AND c.membership = 'join' LIMIT $2 + 1) AS joined) <= $2"
    )


async def joined_rooms_of(
    conn: asyncpg.Connection, user_ids: Sequence[str], max_members: int
) -> dict[str, list[str]]:
    """Each user's joined rooms that share presence; users in none are left out."""
    rows = await conn.fetch(
        "SELECT m.user_id, m.room_id FROM room_members m"
        " WHERE m.user_id = ANY($1::text[]) AND m.membership = 'join'"
        " AND " + _shares_presence("m.room_id"),
        list(user_ids),
        max_members,
        types.CHANNEL_ROOM_TYPE,
    )
    rooms: dict[str, list[str]] = {}
    for row in rows:
        rooms.setdefault(row["user_id"], []).append(row["room_id"])
    return rooms


async def joined_members_of(
    conn: asyncpg.Connection, room_ids: Sequence[str], max_members: int
) -> list[str]:
    """Everyone joined to any of the rooms that share presence, once each."""
    return await fetch_column(
        conn,
        "SELECT DISTINCT m.user_id FROM room_members m"
        " WHERE m.membership = 'join' AND m.room_id IN"
        " (SELECT asked FROM unnest($1::text[]) AS asked WHERE " + _shares_presence("asked") + ")",
        list(room_ids),
        max_members,
        types.CHANNEL_ROOM_TYPE,
    )
