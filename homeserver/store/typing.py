"""Typing shared in PostgreSQL (workers without Redis; migrations/0022).

Each change locks the one-row serial first, so serials become visible in the
order they are taken: a reader at serial 11 has seen the change numbered 10.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def set_typing(
    conn: asyncpg.Connection, room_id: str, user_id: str, expires_at: int | None, now: int
) -> int:
    """Start (expires_at given) or stop typing: the serial of the change, or 0 when the
    set of typers did not change (what typing_notices.LocalTypingState.set decides, in
    one transaction)."""
    async with conn.transaction():
        await conn.execute("SELECT serial FROM typing_serial FOR UPDATE")
        current = await conn.fetchval(
            "SELECT expires_at FROM typing_users WHERE room_id = $1 AND user_id = $2",
            room_id,
            user_id,
        )
        was_typing = current is not None and current > now
        if expires_at is not None:
            await conn.execute(
                "INSERT INTO typing_users (room_id, user_id, expires_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                room_id,
                user_id,
                expires_at,
            )
            if was_typing:
                return 0
        else:
            if current is None:
                return 0
            await conn.execute(
                "DELETE FROM typing_users WHERE room_id = $1 AND user_id = $2", room_id, user_id
            )
        return await _bump(conn, [room_id])


async def expire(conn: asyncpg.Connection, now: int) -> tuple[list[str], int, int | None]:
    """Remove typers expired by `now`: (rooms changed, serial now, next expiry or None)."""
    async with conn.transaction():
        serial = int(await conn.fetchval("SELECT serial FROM typing_serial FOR UPDATE"))
        rows = await conn.fetch(
            "DELETE FROM typing_users WHERE expires_at <= $1 RETURNING room_id", now
        )
        rooms = list(dict.fromkeys(row["room_id"] for row in rows))
        if rooms:
            serial = await _bump(conn, rooms)
        upcoming = await conn.fetchval("SELECT min(expires_at) FROM typing_users")
    return rooms, serial, upcoming


async def _bump(conn: asyncpg.Connection, room_ids: Sequence[str]) -> int:
    """Take the next serial for a change of `room_ids`; the serial."""
    serial = await conn.fetchval(
        "WITH s AS (UPDATE typing_serial SET serial = serial + 1 RETURNING serial),"
        " r AS (INSERT INTO typing_rooms (room_id, serial)"
        " SELECT r, s.serial FROM s, unnest($1::text[]) r"
        " ON CONFLICT (room_id) DO UPDATE SET serial = EXCLUDED.serial)"
        " SELECT serial FROM s",
        list(room_ids),
    )
    return int(serial)


async def serial(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT serial FROM typing_serial"))


async def typing(
    conn: asyncpg.Connection, room_ids: Sequence[str], since_serial: int | None, now: int
) -> dict[str, list[str]]:
    """As typing_notices.TypingState.typing."""
    rooms = list(room_ids)
    if since_serial is not None:
        rows = await conn.fetch(
            "SELECT room_id FROM typing_rooms WHERE room_id = ANY($1::text[]) AND serial > $2",
            rooms,
            since_serial,
        )
        rooms = [row["room_id"] for row in rows]
        if not rooms:
            return {}
    rows = await conn.fetch(
        "SELECT room_id, user_id FROM typing_users"
        " WHERE room_id = ANY($1::text[]) AND expires_at > $2 ORDER BY room_id, user_id",
        rooms,
        now,
    )
    found: dict[str, list[str]] = {room: [] for room in rooms} if since_serial is not None else {}
    for row in rows:
        found.setdefault(row["room_id"], []).append(row["user_id"])
    return found
