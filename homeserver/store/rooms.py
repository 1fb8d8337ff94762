"""Room queries: membership, current state, aliases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.results import fetch_column


@dataclass(frozen=True, slots=True)
class Membership:
    membership: str
    event_id: str
    stream_position: int


async def room_exists(conn: asyncpg.Connection, room_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM rooms WHERE room_id = $1", room_id))


async def membership(conn: asyncpg.Connection, room_id: str, user_id: str) -> Membership | None:
    row = await conn.fetchrow(
        "SELECT membership, event_id, stream_position FROM room_members"
        " WHERE room_id = $1 AND user_id = $2",
        room_id,
        user_id,
    )
    if row is None:
        return None
    return Membership(row["membership"], row["event_id"], row["stream_position"])


async def joined_room_ids(conn: asyncpg.Connection, user_id: str) -> list[str]:
    return await fetch_column(
        conn,
        "SELECT room_id FROM room_members WHERE user_id = $1 AND membership = 'join'"
        " ORDER BY stream_position",
        user_id,
    )


async def member_events(
    conn: asyncpg.Connection, room_id: str, at_position: int | None = None
) -> list[Event]:
    """Current m.room.member events of a room (as of `at_position` when given, from the log)."""
    if at_position is None:
        rows = await conn.fetch(
            "SELECT e.event_id, e.stream_position, e.json FROM room_members m"
            " JOIN events e ON e.event_id = m.event_id WHERE m.room_id = $1"
            " ORDER BY m.user_id",
            room_id,
        )
    else:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (state_key) event_id, stream_position, json FROM events"
            " WHERE room_id = $1 AND type = 'm.room.member' AND stream_position <= $2"
            " ORDER BY state_key, stream_position DESC",
            room_id,
            at_position,
        )
    return [event_from_row(r) for r in rows]


async def state_events(conn: asyncpg.Connection, room_id: str) -> list[Event]:
    rows = await conn.fetch(
        "SELECT e.event_id, e.stream_position, e.json FROM current_state s"
        " JOIN events e ON e.event_id = s.event_id WHERE s.room_id = $1"
        " ORDER BY e.stream_position",
        room_id,
    )
    return [event_from_row(r) for r in rows]


async def state_event(
    conn: asyncpg.Connection, room_id: str, event_type: str, state_key: str
) -> Event | None:
    row = await conn.fetchrow(
        "SELECT e.event_id, e.stream_position, e.json FROM current_state s"
        " JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = $1 AND s.type = $2 AND s.state_key = $3",
        room_id,
        event_type,
        state_key,
    )
    if row is None:
        return None
    return event_from_row(row)


async def alias_target(conn: asyncpg.Connection, alias: str) -> tuple[str, str] | None:
    """(room_id, creator) of an alias."""
    row = await conn.fetchrow("SELECT room_id, creator FROM room_aliases WHERE alias = $1", alias)
    return (row["room_id"], row["creator"]) if row is not None else None


async def room_versions(conn: asyncpg.Connection, room_ids: Sequence[str]) -> dict[str, str]:
    """The version each of these rooms was created with (rooms unknown are left out)."""
    rows = await conn.fetch(
        "SELECT room_id, room_version FROM rooms WHERE room_id = ANY($1::text[])", list(room_ids)
    )
    return {row["room_id"]: row["room_version"] for row in rows}


async def head_event_id(conn: asyncpg.Connection, room_id: str) -> str | None:
    """The last event of the room's chain."""
    value = await conn.fetchval("SELECT event_id FROM chain_heads WHERE room_id = $1", room_id)
    return str(value) if value is not None else None


async def alias_creators(conn: asyncpg.Connection, room_id: str) -> dict[str, str]:
    """The room's local aliases and who made each."""
    rows = await conn.fetch(
        "SELECT alias, creator FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
    )
    return {row["alias"]: row["creator"] for row in rows}


async def joined_user_ids(conn: asyncpg.Connection, room_id: str) -> list[str]:
    return await fetch_column(
        conn,
        "SELECT user_id FROM room_members WHERE room_id = $1 AND membership = 'join'"
        " ORDER BY user_id",
        room_id,
    )


async def aliases_of(conn: asyncpg.Connection, room_id: str) -> list[str]:
    return await fetch_column(
        conn, "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
    )


async def transaction_ids(
    conn: asyncpg.Connection, event_ids: list[str], user_id: str, device_id: str
) -> dict[str, str]:
    """Transaction IDs that this one device gave the events among `event_ids`."""
    rows = await conn.fetch(
        "SELECT event_id, txn_id FROM event_txn_ids"
        " WHERE event_id = ANY($1::text[]) AND user_id = $2 AND device_id = $3",
        event_ids,
        user_id,
        device_id,
    )
    return {row["event_id"]: row["txn_id"] for row in rows}


async def forgotten_at(conn: asyncpg.Connection, room_id: str, user_id: str) -> int | None:
    """The stream position at which the user last forgot the room, if they did."""
    position = await conn.fetchval(
        "SELECT stream_position FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2",
        user_id,
        room_id,
    )
    return int(position) if position is not None else None


async def state_events_at(conn: asyncpg.Connection, room_id: str, position: int) -> list[Event]:
    """The room's state as of `position`, from the log (for a member who has left)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (type, state_key) event_id, stream_position, json FROM events"
        " WHERE room_id = $1 AND state_key IS NOT NULL AND stream_position <= $2"
        " ORDER BY type, state_key, stream_position DESC",
        room_id,
        position,
    )
    events = [event_from_row(r) for r in rows]
    return sorted(events, key=lambda event: event.stream_position)
