"""The mutes in force (`room_mutes`, a projection of the rooms' com.linkchat.mute state)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

_COLUMNS = (
    "room_id, user_id, event_id, muted_by, level, previous_level, muted_ts, expires_ts, reason"
)


@dataclass(frozen=True, slots=True)
class MuteRow:
    room_id: str
    user_id: str
    event_id: str
    muted_by: str
    level: int
    previous_level: int
    muted_ts: int
    expires_ts: int | None
    reason: str | None


def _row(record: asyncpg.Record) -> MuteRow:
    return MuteRow(**dict(record))


async def room_mutes(conn: asyncpg.Connection, room_id: str) -> list[MuteRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM room_mutes WHERE room_id = $1 ORDER BY muted_ts, user_id",
        room_id,
    )
    return [_row(row) for row in rows]


async def timed_mutes(conn: asyncpg.Connection) -> list[MuteRow]:
    """Every mute with an end, soonest first: the expiry follower's schedule."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM room_mutes WHERE expires_ts IS NOT NULL ORDER BY expires_ts"
    )
    return [_row(row) for row in rows]
