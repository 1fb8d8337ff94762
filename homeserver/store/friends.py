"""Friends and blocks: the projection tables, and the facts behind them as the rules see them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events import types
from homeserver.events.canonical import decode


@dataclass(frozen=True, slots=True)
class RelationRow:
    other_id: str
    relation: str  # outgoing | incoming | friends
    message: str | None
    ts: int  # when the request was sent, or since when they are friends
    room_id: str | None


@dataclass(frozen=True, slots=True)
class BlockRow:
    blocked_id: str
    ts: int


_RELATION_COLUMNS = "other_id, relation, message, ts, room_id"


def _relation(row: asyncpg.Record) -> RelationRow:
    return RelationRow(**dict(row))  # the columns are the fields (_RELATION_COLUMNS)


async def relations(
    conn: asyncpg.Connection, user_id: str, kinds: Sequence[str]
) -> list[RelationRow]:
    rows = await conn.fetch(
        f"SELECT {_RELATION_COLUMNS} FROM friend_relations"
        " WHERE user_id = $1 AND relation = ANY($2::text[]) ORDER BY ts, other_id",
        user_id,
        list(kinds),
    )
    return [_relation(row) for row in rows]


async def relation(conn: asyncpg.Connection, user_id: str, other_id: str) -> RelationRow | None:
    row = await conn.fetchrow(
        f"SELECT {_RELATION_COLUMNS} FROM friend_relations WHERE user_id = $1 AND other_id = $2",
        user_id,
        other_id,
    )
    return _relation(row) if row is not None else None


async def blocks(conn: asyncpg.Connection, user_id: str) -> list[BlockRow]:
    rows = await conn.fetch(
        "SELECT blocked_id, ts FROM user_blocks WHERE user_id = $1 ORDER BY ts, blocked_id",
        user_id,
    )
    return [BlockRow(row["blocked_id"], row["ts"]) for row in rows]


async def has_blocked(conn: asyncpg.Connection, user_id: str, other_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM user_blocks WHERE user_id = $1 AND blocked_id = $2", user_id, other_id
        )
    )


async def blocks_among(
    conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Which of the (blocker, blocked) pairs are blocks in force."""
    rows = await conn.fetch(
        "SELECT b.user_id, b.blocked_id FROM user_blocks b"
        " JOIN unnest($1::text[], $2::text[]) AS p(user_id, blocked_id)"
        " ON b.user_id = p.user_id AND b.blocked_id = p.blocked_id",
        [blocker for blocker, _ in pairs],
        [blocked for _, blocked in pairs],
    )
    return [(row["user_id"], row["blocked_id"]) for row in rows]


async def share_a_room(conn: asyncpg.Connection, user_id: str, other_id: str) -> bool:
    """Whether both are joined to at least one room."""
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM room_members a JOIN room_members b ON b.room_id = a.room_id"
            " WHERE a.user_id = $1 AND a.membership = 'join'"
            " AND b.user_id = $2 AND b.membership = 'join' LIMIT 1",
            user_id,
            other_id,
        )
    )


async def present_members(conn: asyncpg.Connection, room_id: str) -> dict[str, str]:
    """Joined and invited members of a room, with their membership."""
    rows = await conn.fetch(
        "SELECT user_id, membership FROM room_members"
        " WHERE room_id = $1 AND membership IN ('join', 'invite')",
        room_id,
    )
    return {row["user_id"]: row["membership"] for row in rows}


async def friend_facts(conn: asyncpg.Connection, user_id: str) -> dict[str, dict[str, Any]]:
    """Content of every com.linkchat.friend fact in the user's chain, by the other user:
    exactly what the rules see in the chain's state."""
    rows = await conn.fetch(
        "SELECT s.state_key, e.json FROM current_state s JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = $1 AND s.type = $2",
        user_id,
        types.FRIEND,
    )
    return {row["state_key"]: decode(row["json"])["content"] for row in rows}
