"""Background room deletions and how they went (`room_deletions`: bookkeeping, not in the
log), for the admin API's delete_status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from homeserver.store.results import fetch_column

ACTIVE = ("scheduled", "active")


@dataclass(frozen=True, slots=True)
class DeletionRow:
    delete_id: str
    room_id: str
    status: str
    error: str | None
    result: dict[str, Any]


def _row(record: asyncpg.Record) -> DeletionRow:
    return DeletionRow(
        record["delete_id"],
        record["room_id"],
        record["status"],
        record["error"],
        orjson.loads(record["result"]),
    )


async def insert(
    conn: asyncpg.Connection,
    delete_id: str,
    room_id: str,
    admin_id: str,
    result: dict[str, Any],
    now_ms: int,
) -> None:
    await conn.execute(
        "INSERT INTO room_deletions"
        " (delete_id, room_id, admin_id, status, result, created_ts, updated_ts)"
        " VALUES ($1, $2, $3, 'scheduled', $4, $5, $5)",
        delete_id,
        room_id,
        admin_id,
        orjson.dumps(result).decode(),
        now_ms,
    )


async def update(
    conn: asyncpg.Connection,
    delete_id: str,
    status: str,
    result: dict[str, Any],
    now_ms: int,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE room_deletions SET status = $2, result = $3, error = $4, updated_ts = $5"
        " WHERE delete_id = $1",
        delete_id,
        status,
        orjson.dumps(result).decode(),
        error,
        now_ms,
    )


_SHOWN = "(status = ANY($2::text[]) OR updated_ts >= $3)"


async def by_id(conn: asyncpg.Connection, delete_id: str, since_ms: int) -> DeletionRow | None:
    """The deletion, if in progress or ended since `since_ms`."""
    record = await conn.fetchrow(
        f"SELECT * FROM room_deletions WHERE delete_id = $1 AND {_SHOWN}",
        delete_id,
        list(ACTIVE),
        since_ms,
    )
    return _row(record) if record is not None else None


async def by_room(conn: asyncpg.Connection, room_id: str, since_ms: int) -> list[DeletionRow]:
    """The room's deletions in progress or ended since `since_ms`, oldest first."""
    records = await conn.fetch(
        f"SELECT * FROM room_deletions WHERE room_id = $1 AND {_SHOWN} ORDER BY created_ts",
        room_id,
        list(ACTIVE),
        since_ms,
    )
    return [_row(record) for record in records]


async def members_to_remove(conn: asyncpg.Connection, room_id: str) -> list[str]:
    """Who is in the room, invited to it or knocking at it."""
    return await fetch_column(
        conn,
        "SELECT user_id FROM room_members WHERE room_id = $1"
        " AND membership IN ('join', 'invite', 'knock') ORDER BY user_id",
        room_id,
    )


async def members_ever(conn: asyncpg.Connection, room_id: str) -> list[str]:
    """Everyone with a membership in the room now (after the deletion: left or banned)."""
    return await fetch_column(
        conn, "SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY user_id", room_id
    )
