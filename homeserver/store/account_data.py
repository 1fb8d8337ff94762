"""Account data, global (room_id = '') and per room: a projection of the account chains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events import types
from homeserver.events.canonical import decode
from homeserver.events.content.profile import ignored_user_ids

GLOBAL = ""


@dataclass(frozen=True, slots=True)
class AccountDataRow:
    room_id: str  # "" for global account data
    type: str
    content: dict[str, Any]


async def content(
    conn: asyncpg.Connection, user_id: str, room_id: str, data_type: str
) -> dict[str, Any] | None:
    value = await conn.fetchval(
        "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3",
        user_id,
        room_id,
        data_type,
    )
    if value is None:
        return None
    decoded = decode(value)
    return decoded if isinstance(decoded, dict) else None


async def ignored_users(conn: asyncpg.Connection, user_id: str) -> frozenset[str]:
    """Whom the user ignores (their global m.ignored_user_list)."""
    return ignored_user_ids(await content(conn, user_id, GLOBAL, types.IGNORED_USER_LIST), user_id)


async def changed_between(
    conn: asyncpg.Connection, user_id: str, since: int | None, until: int, *, rooms: bool
) -> list[AccountDataRow]:
    """The user's account data written in (since, until]: per-room rows or global ones."""
    rows = await conn.fetch(
        "SELECT room_id, type, content FROM account_data"
        " WHERE user_id = $1 AND stream_position > $2 AND stream_position <= $3"
        " AND (room_id <> '') = $4 ORDER BY stream_position",
        user_id,
        since if since is not None else -1,
        until,
        rooms,
    )
    return [AccountDataRow(r["room_id"], r["type"], decode(r["content"])) for r in rows]
