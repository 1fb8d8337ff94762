"""Queries of the public room directory: which rooms are published, and their summaries.

A summary is read from the room's current state (name, topic, canonical alias,
avatar, join rule, history visibility, guest access) and its joined members,
for the published rooms only. Like Synapse, a published room is listed while
anyone may find their way in: its join rule is public or knock, or its history
is world_readable, and someone is still joined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.store.query_args import QueryArgs


@dataclass(frozen=True)
class RoomSummary:
    room_id: str
    joined_members: int
    room_type: str | None
    name: str | None
    topic: str | None
    canonical_alias: str | None
    avatar_url: str | None
    join_rule: str | None
    history_visibility: str | None
    guest_access: str | None


@dataclass(frozen=True)
class DirectoryPage:
    rooms: list[RoomSummary]
    total: int  # listed rooms (of the types asked), whatever the search term


async def is_published(conn: asyncpg.Connection, room_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM room_directory WHERE room_id = $1", room_id))


def state_field(event_type: str, key: str, name: str) -> str:
    return (
        f"max(CASE WHEN cs.type = '{event_type}' AND jsonb_typeof(c -> '{key}') = 'string'"
        f" THEN c ->> '{key}' END) AS {name}"
    )


SUMMARY_STATE = ", ".join(
    [
        state_field("m.room.name", "name", "name"),
        state_field("m.room.topic", "topic", "topic"),
        state_field("m.room.canonical_alias", "alias", "canonical_alias"),
        state_field("m.room.avatar", "url", "avatar_url"),
        state_field("m.room.join_rules", "join_rule", "join_rule"),
        state_field("m.room.history_visibility", "history_visibility", "history_visibility"),
        state_field("m.room.guest_access", "guest_access", "guest_access"),
    ]
)
SUMMARY_TYPES = [
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
]


def joined_members_column(room: str) -> str:
    """SQL: the count of members joined to the room whose ID is `room` (a column)."""
    return (
        "(SELECT count(*) FROM room_members m"
        f" WHERE m.room_id = {room} AND m.membership = 'join') AS joined_members"
    )


def summary_state_join(room: str, columns: str = SUMMARY_STATE) -> str:
    """SQL: a lateral join `st` of `columns` (state_field()s) read from the current state
    of the room whose ID is `room` (a column); $1 is the state types they read."""
    return f"""CROSS JOIN LATERAL (
        SELECT {columns}
        FROM current_state cs
        JOIN events e ON e.event_id = cs.event_id
        CROSS JOIN LATERAL (SELECT e.json::jsonb -> 'content' AS c) content
        WHERE cs.room_id = {room} AND cs.state_key = '' AND cs.type = ANY($1::text[])
    ) st"""


_COLUMNS = (
    "room_id, joined_members, room_type, name, topic, canonical_alias, avatar_url,"
    " join_rule, history_visibility, guest_access"
)


def like_anywhere(term: str) -> str:
    """A LIKE pattern that finds `term` anywhere, its own % and _ taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def room_summaries(
    conn: asyncpg.Connection, room_ids: Sequence[str]
) -> dict[str, RoomSummary]:
    """The summary of each of the rooms that exists, published or not (for admins)."""
    rows = await conn.fetch(
        f"""
        SELECT r.room_id, r.room_type, {joined_members_column("r.room_id")}, st.*
        FROM rooms r
        {summary_state_join("r.room_id")}
        WHERE r.room_id = ANY($2::text[])
        """,
        SUMMARY_TYPES,
        list(room_ids),
    )
    return {row["room_id"]: _summary(dict(row)) for row in rows}


async def public_rooms(
    conn: asyncpg.Connection,
    *,
    limit: int,
    search_term: str | None = None,
    room_types: Sequence[str | None] | None = None,
    after: tuple[int, str] | None = None,
    before: tuple[int, str] | None = None,
) -> DirectoryPage:
    """Listed rooms, most joined members first (then by room ID), after the keyset
    `after` or, reading backwards, before `before`; at most `limit` of them."""
    args = QueryArgs(SUMMARY_TYPES, limit)
    param = args.param

    listed = [
        "joined_members > 0",
        # A room an admin blocked leaves the directory while blocked (homeserver/moderation).
        "room_id NOT IN (SELECT b.room_id FROM blocked_rooms b)",
        "room_id NOT IN (SELECT p.room_id FROM purged_rooms p)",
        "(join_rule IN ('public', 'knock', 'knock_restricted')"
        " OR history_visibility = 'world_readable')",
    ]
    if room_types is not None:
        named = [t for t in room_types if t is not None]
        either = [f"room_type = ANY({param(named)}::text[])"]
        if None in room_types:
            either.append("room_type IS NULL")
        listed.append("(" + " OR ".join(either) + ")")
    wanted = ["TRUE"]
    if search_term:
        pattern = param(like_anywhere(search_term))
        wanted.append(
            f"(name ILIKE {pattern} OR topic ILIKE {pattern} OR canonical_alias ILIKE {pattern})"
        )
    order = "joined_members DESC, room_id ASC"
    if after is not None:
        wanted.append(
            f"(joined_members < {param(after[0])}"
            f" OR (joined_members = {param(after[0])} AND room_id > {param(after[1])}))"
        )
    elif before is not None:
        wanted.append(
            f"(joined_members > {param(before[0])}"
            f" OR (joined_members = {param(before[0])} AND room_id < {param(before[1])}))"
        )
        order = "joined_members ASC, room_id DESC"
    row = await conn.fetchrow(
        f"""
        WITH listed AS MATERIALIZED (
            SELECT {_COLUMNS} FROM (
                SELECT d.room_id, r.room_type, {joined_members_column("d.room_id")}, st.*
                FROM room_directory d
                JOIN rooms r ON r.room_id = d.room_id
                {summary_state_join("d.room_id")}
            ) summaries
            WHERE {" AND ".join(listed)}
        )
        SELECT (SELECT count(*) FROM listed) AS total,
               (SELECT coalesce(json_agg(page ORDER BY {order}), '[]') FROM (
                    SELECT {_COLUMNS} FROM listed WHERE {" AND ".join(wanted)}
                    ORDER BY {order} LIMIT $2
               ) page) AS page
        """,
        *args.values,
    )
    assert row is not None
    rooms = [_summary(item) for item in json.loads(row["page"])]
    if before is not None:
        rooms.reverse()
    return DirectoryPage(rooms, int(row["total"]))


def _summary(item: dict[str, Any]) -> RoomSummary:
    return RoomSummary(
        room_id=item["room_id"],
        joined_members=int(item["joined_members"]),
        room_type=item["room_type"],
        name=item["name"],
        topic=item["topic"],
        canonical_alias=item["canonical_alias"],
        avatar_url=item["avatar_url"],
        join_rule=item["join_rule"],
        history_visibility=item["history_visibility"],
        guest_access=item["guest_access"],
    )


async def published_among(conn: asyncpg.Connection, room_ids: Sequence[str]) -> set[str]:
    """Which of the rooms are published in the room directory."""
    rows = await conn.fetch(
        "SELECT room_id FROM room_directory WHERE room_id = ANY($1::text[])", list(room_ids)
    )
    return {row["room_id"] for row in rows}
