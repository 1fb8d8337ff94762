"""Rooms as the admin API lists and shows them (Synapse's GET /_synapse/admin/v1/rooms):
every room of the server with its name, alias, members, version, creator, encryption,
rules and size, searched, sorted and paged by offset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from homeserver.store.query_args import QueryArgs
from homeserver.store.room_directory import (
    SUMMARY_STATE,
    SUMMARY_TYPES,
    joined_members_column,
    like_anywhere,
    state_field,
    summary_state_join,
)

# What the summary reads of the room's state beyond the directory's: the encryption
# algorithm, and whether the room may federate (m.room.create's m.federate).
_STATE = ", ".join(
    [
        SUMMARY_STATE,
        state_field("m.room.encryption", "algorithm", "encryption"),
        "coalesce(bool_and(CASE WHEN cs.type = 'm.room.create'"
        " AND jsonb_typeof(c -> 'm.federate') = 'boolean'"
        " THEN (c ->> 'm.federate')::boolean END), TRUE) AS federatable",
    ]
)
_TYPES = [*SUMMARY_TYPES, "m.room.encryption", "m.room.create"]

# Every room, in Synapse's fields; $1: the state types the summary reads.
_ROOMS = f"""
    SELECT r.room_id, r.room_version AS version, r.creator, r.room_type,
           {joined_members_column("r.room_id")},
           (SELECT count(*) FROM current_state s WHERE s.room_id = r.room_id) AS state_events,
           EXISTS (SELECT 1 FROM room_directory d WHERE d.room_id = r.room_id) AS public,
           st.*
      FROM rooms r
      {summary_state_join("r.room_id", _STATE)}
     WHERE r.room_id NOT IN (SELECT p.room_id FROM purged_rooms p)
"""

# Sort keys of GET /_synapse/admin/v1/rooms, and whether each sorts largest first
# forwards (Synapse's sizes do).
ORDERS: dict[str, tuple[str, bool]] = {
    "name": ("name", False),
    "alphabetical": ("name", False),
    "canonical_alias": ("canonical_alias", False),
    "joined_members": ("joined_members", True),
    "size": ("joined_members", True),
    "joined_local_members": ("joined_members", True),
    "version": ("version", True),
    "creator": ("creator", False),
    "encryption": ("encryption", False),
    "federatable": ("federatable", True),
    "public": ("public", True),
    "join_rules": ("join_rule", False),
    "guest_access": ("guest_access", False),
    "history_visibility": ("history_visibility", False),
    "state_events": ("state_events", True),
}


@dataclass(frozen=True, slots=True)
class RoomQuery:
    search_term: str | None = None  # in the name, the alias's localpart, or the room ID
    public_rooms: bool | None = None
    empty_rooms: bool | None = None
    order_by: str = "name"
    forwards: bool = True


def _where(query: RoomQuery, args: QueryArgs) -> str:
    clauses = ["TRUE"]
    if query.search_term is not None:
        anywhere = args.param(like_anywhere(query.search_term.lower()))
        exact = args.param(like_anywhere(query.search_term))
        clauses.append(
            f"(lower(coalesce(name, '')) LIKE {anywhere}"
            f" OR lower(split_part(substr(coalesce(canonical_alias, ''), 2), ':', 1))"
            f" LIKE {anywhere} OR room_id LIKE {exact})"
        )
    if query.public_rooms is not None:
        clauses.append("public" if query.public_rooms else "NOT public")
    if query.empty_rooms is not None:
        clauses.append("joined_members = 0" if query.empty_rooms else "joined_members > 0")
    return " AND ".join(clauses)


async def rooms(
    conn: asyncpg.Connection, query: RoomQuery, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the rooms `query` selects, and how many it selects in all."""
    args = QueryArgs(_TYPES)
    where = _where(query, args)
    column, largest_first = ORDERS[query.order_by]
    ascending = query.forwards != largest_first
    # Ties sort by room ID, so pages never overlap; rooms with no value come last.
    order = f"{column} {'ASC' if ascending else 'DESC'} NULLS LAST, room_id ASC"
    offset_param, limit_param = args.param(offset), args.param(limit)
    row = await conn.fetchrow(
        f"""
        WITH listed AS MATERIALIZED (SELECT * FROM ({_ROOMS}) rooms WHERE {where})
        SELECT (SELECT count(*) FROM listed) AS total,
               (SELECT coalesce(json_agg(page ORDER BY {order}), '[]') FROM (
                    SELECT * FROM listed ORDER BY {order}
                    OFFSET {offset_param} LIMIT {limit_param}
               ) page)::text AS page
        """,
        *args.values,
    )
    assert row is not None
    return orjson.loads(row["page"]), int(row["total"])


async def room(conn: asyncpg.Connection, room_id: str) -> dict[str, Any] | None:
    """One room, with what the details add: the devices of its joined members, and
    whether everyone who was in it has forgotten it."""
    row = await conn.fetchrow(
        f"""
        SELECT listed.*,
               (SELECT count(*) FROM devices d JOIN room_members m ON m.user_id = d.user_id
                 WHERE m.room_id = $2 AND m.membership = 'join') AS joined_local_devices,
               NOT EXISTS (
                   SELECT 1 FROM room_members m WHERE m.room_id = $2 AND NOT EXISTS (
                       SELECT 1 FROM forgotten_rooms f WHERE f.user_id = m.user_id
                          AND f.room_id = m.room_id AND f.stream_position > m.stream_position)
               ) AS forgotten
          FROM ({_ROOMS} AND r.room_id = $2) listed
        """,
        _TYPES,
        room_id,
    )
    return dict(row) if row is not None else None


async def chain_head(conn: asyncpg.Connection, room_id: str) -> dict[str, Any] | None:
    """The room's latest event: its one forward extremity (a chain has one head)."""
    row = await conn.fetchrow(
        "SELECT h.event_id, h.depth, h.stream_position,"
        " (e.json::jsonb ->> 'origin_server_ts')::bigint AS received_ts"
        " FROM chain_heads h JOIN events e ON e.event_id = h.event_id WHERE h.room_id = $1",
        room_id,
    )
    return dict(row) if row is not None else None


async def creator(conn: asyncpg.Connection, room_id: str) -> str | None:
    found = await conn.fetchval("SELECT creator FROM rooms WHERE room_id = $1", room_id)
    return str(found) if found is not None else None
