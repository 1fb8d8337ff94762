"""Profiles (a projection of the account chains) and the member events that show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.store.events import event_from_row


@dataclass(frozen=True, slots=True)
class ProfileRow:
    displayname: str | None
    avatar_url: str | None


async def profile(conn: asyncpg.Connection, user_id: str) -> ProfileRow | None:
    """The user's profile; None for a user the log has never registered."""
    row = await conn.fetchrow(
        "SELECT displayname, avatar_url FROM profiles WHERE user_id = $1", user_id
    )
    return ProfileRow(row["displayname"], row["avatar_url"]) if row is not None else None


async def profile_fact_id(conn: asyncpg.Connection, user_id: str) -> str | None:
    """The event ID of the user's current profile fact; None before they first set one."""
    value = await conn.fetchval(
        "SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = ''",
        user_id,
        types.PROFILE,
    )
    return str(value) if value is not None else None


async def joined_member_events(conn: asyncpg.Connection, user_id: str) -> list[Event]:
    """The user's current m.room.member event in every room they are joined to."""
    rows = await conn.fetch(
        "SELECT e.event_id, e.stream_position, e.json FROM room_members m"
        " JOIN events e ON e.event_id = m.event_id"
        " WHERE m.user_id = $1 AND m.membership = 'join' ORDER BY m.room_id",
        user_id,
    )
    return [event_from_row(r) for r in rows]


async def joined_at(
    conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], position: int
) -> set[str]:
    """Those of `room_ids` the user was joined to as of `position` and since, throughout.

    A join event after a join only changed the member's profile: sync must not
    take the room for a new one (and send its whole state again). A leave and a
    join again since `position` is a new join."""
    if not room_ids:
        return set()
    rows = await conn.fetch(
        "SELECT r.room_id FROM unnest($1::text[]) AS r(room_id)"
        " CROSS JOIN LATERAL (SELECT json FROM events"
        "   WHERE room_id = r.room_id AND type = 'm.room.member' AND state_key = $2"
        "   AND stream_position <= $3 ORDER BY stream_position DESC LIMIT 1) e"
        " WHERE e.json::jsonb -> 'content' ->> 'membership' = 'join'"
        " AND NOT EXISTS (SELECT 1 FROM events later"
        "   WHERE later.room_id = r.room_id AND later.type = 'm.room.member'"
        "   AND later.state_key = $2 AND later.stream_position > $3"
        "   AND later.json::jsonb -> 'content' ->> 'membership' <> 'join')",
        list(room_ids),
        user_id,
        position,
    )
    return {row["room_id"] for row in rows}
