"""Queries for roles and channels: a room's type and creator, and who is in it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.store.results import fetch_column


@dataclass(frozen=True, slots=True)
class RoomSummary:
    creator: str
    room_type: str | None


async def room_summary(conn: asyncpg.Connection, room_id: str) -> RoomSummary | None:
    """Creator and `type` (from m.room.create) of a room; None for an unknown room."""
    row = await conn.fetchrow("SELECT creator, room_type FROM rooms WHERE room_id = $1", room_id)
    return RoomSummary(row["creator"], row["room_type"]) if row is not None else None


async def joined_count(conn: asyncpg.Connection, room_id: str) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM room_members WHERE room_id = $1 AND membership = 'join'", room_id
    )
    return int(count)


async def member_ids(
    conn: asyncpg.Connection, room_id: str, memberships: tuple[str, ...]
) -> list[str]:
    """Users whose membership of the room is one of `memberships`, by user ID."""
    return await fetch_column(
        conn,
        "SELECT user_id FROM room_members WHERE room_id = $1 AND membership = ANY($2::text[])"
        " ORDER BY user_id",
        room_id,
        list(memberships),
    )
