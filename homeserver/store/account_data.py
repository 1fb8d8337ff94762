"""Account data, global (room_id = '') and per room: a projection of the account chains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events import types
from homeserver.events.canonical import decode
from homeserver.store.results import stored_object


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
    return stored_object(value)


async def contents_many(
    conn: asyncpg.Connection, user_ids: Sequence[str], room_id: str, data_type: str
) -> list[dict[str, Any] | None]:
    """`content` of one type for many users at once, in the order asked."""
    rows = await conn.fetch(
        "SELECT user_id, content FROM account_data"
        " WHERE user_id = ANY($1::text[]) AND room_id = $2 AND type = $3",
        list(user_ids),
        room_id,
        data_type,
    )
    found = {row["user_id"]: row["content"] for row in rows}
    return [stored_object(found.get(user_id)) for user_id in user_ids]


async def fact(
    conn: asyncpg.Connection, user_id: str, state_key: str
) -> tuple[str, dict[str, Any]] | None:
    """The account-data event now in force under `state_key` in the user's chain:
    its ID and the account data's own content."""
    row = await conn.fetchrow(
        "SELECT e.event_id, e.json FROM current_state s JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = $1 AND s.type = $2 AND s.state_key = $3",
        user_id,
        types.ACCOUNT_DATA,
        state_key,
    )
    if row is None:
        return None
    data = decode(row["json"])["content"].get("content")
    return row["event_id"], data if isinstance(data, dict) else {}


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
