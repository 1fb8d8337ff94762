"""Email notifications: email pushers, their progress, and what they have to tell."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.store.push import READ_RECEIPTS, read_up_to_sql


@dataclass(frozen=True, slots=True)
class EmailPusher:
    pusher_id: int
    user_id: str
    address: str
    created_ts: int
    last_position: int  # 0: nothing sent yet
    oldest_unread_ts: int | None  # when its oldest notification to tell was recorded


@dataclass(frozen=True, slots=True)
class Unread:
    room_id: str
    stream_position: int
    event_id: str
    ts: int  # when the notification was recorded


async def email_pushers(conn: asyncpg.Connection) -> list[EmailPusher]:
    """Every email pusher with the time of the oldest notification it has to tell (one
    statement for all, however many pushers: the notifier looks at them all each time)."""
    rows = await conn.fetch(
        "SELECT p.pusher_id, p.user_id, p.pushkey, p.created_ts,"
        " coalesce(g.last_position, 0) AS last_position,"
        " (SELECT min(n.ts) FROM push_notifications n WHERE n.user_id = p.user_id"
        "   AND n.stream_position > coalesce(g.last_position, 0) AND n.ts >= p.created_ts"
        "   AND n.stream_position > "
        + read_up_to_sql("n.user_id", "n.room_id", "n.thread_id", "$1")
        + ") AS oldest"
        " FROM pushers p LEFT JOIN email_pusher_progress g USING (pusher_id)"
        " WHERE p.kind = 'email' ORDER BY p.pusher_id",
        list(READ_RECEIPTS),
    )
    return [
        EmailPusher(
            r["pusher_id"],
            r["user_id"],
            r["pushkey"],
            r["created_ts"],
            r["last_position"],
            r["oldest"],
        )
        for r in rows
    ]


async def unread(
    conn: asyncpg.Connection, user_id: str, after_position: int, since_ts: int, limit: int
) -> list[Unread]:
    """The user's notifications after `after_position`, recorded since `since_ts` (the
    pusher's creation), that their read receipts have not passed, oldest first."""
    rows = await conn.fetch(
        "SELECT n.room_id, n.stream_position, n.event_id, n.ts FROM push_notifications n"
        " WHERE n.user_id = $1 AND n.stream_position > $2 AND n.ts >= $3"
        " AND n.stream_position > "
        + read_up_to_sql("n.user_id", "n.room_id", "n.thread_id", "$4")
        + " ORDER BY n.stream_position LIMIT $5",
        user_id,
        after_position,
        since_ts,
        list(READ_RECEIPTS),
        limit,
    )
    return [Unread(r["room_id"], r["stream_position"], r["event_id"], r["ts"]) for r in rows]


async def claim(
    conn: asyncpg.Connection, pusher_id: int, expected: int, position: int, now_ms: int
) -> bool:
    """Move the pusher's progress from `expected` to `position` (compare-and-set)."""
    done = await conn.fetchval(
        "INSERT INTO email_pusher_progress (pusher_id, last_position, last_sent_ts)"
        " SELECT $1, $3, $4 WHERE EXISTS (SELECT 1 FROM pushers WHERE pusher_id = $1)"
        " ON CONFLICT (pusher_id) DO UPDATE SET last_position = EXCLUDED.last_position,"
        " last_sent_ts = EXCLUDED.last_sent_ts"
        " WHERE email_pusher_progress.last_position = $2 RETURNING 1",
        pusher_id,
        expected,
        position,
        now_ms,
    )
    return done is not None


async def give_back(conn: asyncpg.Connection, pusher_id: int, claimed: int, previous: int) -> None:
    await conn.execute(
        "UPDATE email_pusher_progress SET last_position = $3"
        " WHERE pusher_id = $1 AND last_position = $2",
        pusher_id,
        claimed,
        previous,
    )


async def events(conn: asyncpg.Connection, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT event_id, json FROM events WHERE event_id = ANY($1::text[])", event_ids
    )
    return {row["event_id"]: json.loads(row["json"]) for row in rows}


async def room_facts(
    conn: asyncpg.Connection, room_ids: list[str]
) -> tuple[dict[str, str], set[str]]:
    """Each room's name (those that have one) and the rooms with encryption turned on."""
    rows = await conn.fetch(
        "SELECT s.room_id, s.type, e.json::jsonb -> 'content' ->> 'name' AS name"
        " FROM current_state s JOIN events e USING (event_id)"
        " WHERE s.room_id = ANY($1::text[]) AND s.state_key = ''"
        " AND s.type IN ('m.room.name', 'm.room.encryption')",
        room_ids,
    )
    names = {r["room_id"]: r["name"] for r in rows if r["type"] == "m.room.name" and r["name"]}
    encrypted = {r["room_id"] for r in rows if r["type"] == "m.room.encryption"}
    return names, encrypted


async def display_names(
    conn: asyncpg.Connection, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The display name each (room, user) has in the room's current state, where set."""
    rows = await conn.fetch(
        "SELECT s.room_id, s.state_key, e.json::jsonb -> 'content' ->> 'displayname' AS name"
        " FROM current_state s JOIN events e USING (event_id)"
        " WHERE s.type = 'm.room.member' AND (s.room_id, s.state_key) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        [room for room, _ in pairs],
        [user for _, user in pairs],
    )
    return {(r["room_id"], r["state_key"]): r["name"] for r in rows if r["name"]}


async def delete_email_pushers(conn: asyncpg.Connection, user_id: str, address: str) -> int:
    deleted = await conn.fetch(
        "DELETE FROM pushers WHERE user_id = $1 AND kind = 'email' AND pushkey = $2"
        " RETURNING pusher_id",
        user_id,
        address,
    )
    return len(deleted)


async def profile_name(conn: asyncpg.Connection, user_id: str) -> str | None:
    value = await conn.fetchval("SELECT displayname FROM profiles WHERE user_id = $1", user_id)
    return str(value) if value else None
