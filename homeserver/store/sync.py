"""Queries of the sync builder: memberships, timelines, state and room summaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.history import EventSelection, event_conditions
from homeserver.store.query_args import QueryArgs
from homeserver.store.unnest import columns


@dataclass(frozen=True, slots=True)
class RoomMembership:
    room_id: str
    membership: str
    event_id: str
    stream_position: int


async def memberships(conn: asyncpg.Connection, user_id: str) -> list[RoomMembership]:
    """Every room the user has a membership in, minus rooms forgotten since."""
    rows = await conn.fetch(
        "SELECT m.room_id, m.membership, m.event_id, m.stream_position FROM room_members m"
        " LEFT JOIN forgotten_rooms f ON f.user_id = m.user_id AND f.room_id = m.room_id"
        " WHERE m.user_id = $1"
        " AND (f.stream_position IS NULL OR f.stream_position < m.stream_position)",
        user_id,
    )
    return [RoomMembership(*row) for row in rows]  # the columns in the fields' order


async def joined_many(conn: asyncpg.Connection, user_ids: Sequence[str]) -> list[dict[str, int]]:
    """For many users at once: each one's joined rooms and the positions of their joins."""
    rows = await conn.fetch(
        "SELECT user_id, room_id, stream_position FROM room_members"
        " WHERE user_id = ANY($1::text[]) AND membership = 'join'",
        list(user_ids),
    )
    found: dict[str, dict[str, int]] = {user_id: {} for user_id in user_ids}
    for row in rows:
        found[row["user_id"]][row["room_id"]] = row["stream_position"]
    return [found[user_id] for user_id in user_ids]


async def timelines(
    conn: asyncpg.Connection,
    windows: Sequence[tuple[str, int, int]],
    limit: int,
    selection: EventSelection | None = None,
) -> dict[str, list[Event]]:
    """Per room, the last `limit` events in its window (after, upto] that `selection` (a
    timeline filter's types, senders and `contains_url`) keeps, oldest first."""
    args = QueryArgs(limit, offset=3)  # after the three unnested arrays
    conditions = event_conditions(selection, args.param) if selection is not None else []
    matching = "".join(f" AND {condition}" for condition in conditions)
    return await _events_in_windows(
        conn,
        "SELECT w.room_id, e.event_id, e.stream_position, e.json"
        " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w(room_id, after, upto)"
        " CROSS JOIN LATERAL (SELECT event_id, stream_position, json FROM events"
        "   WHERE room_id = w.room_id AND stream_position > w.after"
        f"   AND stream_position <= w.upto{matching} ORDER BY stream_position DESC LIMIT $4) e",
        windows,
        *args.values,
    )


async def _events_in_windows(
    conn: asyncpg.Connection, query: str, windows: Sequence[tuple[str, int, int]], *args: object
) -> dict[str, list[Event]]:
    """The events `query` finds for (room, after, upto) windows ($1, $2, $3 unnested), by
    room, oldest first."""
    if not windows:
        return {}
    rows = await conn.fetch(
        query,
        *columns(windows, 3),
        *args,
    )
    return _by_room(rows)


def _by_room(rows: Sequence[asyncpg.Record]) -> dict[str, list[Event]]:
    """The events of rows with a `room_id`, by room, oldest first."""
    found: dict[str, list[Event]] = {}
    for row in rows:
        found.setdefault(row["room_id"], []).append(event_from_row(row))
    for events in found.values():
        events.sort(key=lambda event: event.stream_position)
    return found


async def rooms_with_events(
    conn: asyncpg.Connection, room_ids: Sequence[str], after: int, upto: int
) -> set[str]:
    """Which of `room_ids` have an event in (after, upto] (a short window: uses the position)."""
    rows = await conn.fetch(
        "SELECT DISTINCT room_id FROM events WHERE stream_position > $1"
        " AND stream_position <= $2 AND room_id = ANY($3::text[])",
        after,
        upto,
        list(room_ids),
    )
    return {row["room_id"] for row in rows}


async def current_state(
    conn: asyncpg.Connection, room_ids: Sequence[str]
) -> dict[str, list[Event]]:
    rows = await conn.fetch(
        "SELECT s.room_id, e.event_id, e.stream_position, e.json FROM current_state s"
        " JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ANY($1::text[])",
        list(room_ids),
    )
    return _by_room(rows)


async def state_changes(
    conn: asyncpg.Connection, windows: Sequence[tuple[str, int, int]]
) -> dict[str, list[Event]]:
    """Per room, the latest state event per key changed in (after, before)."""
    return await _events_in_windows(
        conn,
        "SELECT DISTINCT ON (w.room_id, e.type, e.state_key)"
        " w.room_id, e.event_id, e.stream_position, e.json, e.type, e.state_key"
        " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS w(room_id, after, before)"
        " JOIN events e ON e.room_id = w.room_id AND e.state_key IS NOT NULL"
        " AND e.stream_position > w.after AND e.stream_position < w.before"
        " ORDER BY w.room_id, e.type, e.state_key, e.stream_position DESC",
        windows,
    )


@dataclass(frozen=True, slots=True)
class Summary:
    heroes: list[str] | None  # None: the room has a name or canonical alias
    joined: int
    invited: int


async def summaries(
    conn: asyncpg.Connection, room_ids: Sequence[str], user_id: str
) -> dict[str, Summary]:
    """Member counts and heroes of each room. The spec's heroes: "the first 5 members of
    the room, ordered by stream ordering, which are joined or invited", never the user,
    else (no one is) those who left or were banned; needed only when the room has no
    name and no canonical alias, so not given then (as Synapse)."""
    if not room_ids:
        return {}
    rows = await conn.fetch(
        "SELECT m.room_id, count(*) FILTER (WHERE membership = 'join') AS joined,"
        " count(*) FILTER (WHERE membership = 'invite') AS invited,"
        " (array_agg(user_id ORDER BY stream_position) FILTER"
        "   (WHERE membership IN ('join', 'invite') AND user_id <> $2))[1:5] AS heroes,"
        " (array_agg(user_id ORDER BY stream_position) FILTER"
        "   (WHERE membership IN ('leave', 'ban') AND user_id <> $2))[1:5] AS gone,"
        " EXISTS (SELECT 1 FROM current_state s JOIN events e ON e.event_id = s.event_id"
        "   WHERE s.room_id = m.room_id AND s.state_key = ''"
        "   AND ((s.type = 'm.room.name' AND e.json::jsonb -> 'content' ->> 'name' <> '')"
        "   OR (s.type = 'm.room.canonical_alias'"
        "   AND e.json::jsonb -> 'content' ->> 'alias' <> ''))) AS named"
        " FROM room_members m WHERE m.room_id = ANY($1::text[]) GROUP BY m.room_id",
        list(room_ids),
        user_id,
    )
    return {
        r["room_id"]: Summary(
            None if r["named"] else list(r["heroes"] or r["gone"] or []),
            r["joined"],
            r["invited"],
        )
        for r in rows
    }


async def events_between(
    conn: asyncpg.Connection, after: int, upto: int
) -> list[tuple[Event, str | None, str | None]]:
    """Events in (after, upto] with the (device ID, txn ID) their sender gave, in order."""
    rows = await conn.fetch(
        "SELECT e.event_id, e.stream_position, e.json, t.device_id, t.txn_id FROM events e"
        " LEFT JOIN event_txn_ids t ON t.event_id = e.event_id"
        " WHERE e.stream_position > $1 AND e.stream_position <= $2 ORDER BY e.stream_position",
        after,
        upto,
    )
    return [(event_from_row(row), row["device_id"], row["txn_id"]) for row in rows]


async def memberships_at(
    conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], position: int
) -> dict[str, str]:
    """The user's membership in each of the rooms as of `position` (rooms they had none
    in are left out)."""
    if not room_ids:
        return {}
    rows = await conn.fetch(
        "SELECT r.room_id, e.json::jsonb -> 'content' ->> 'membership' AS membership"
        " FROM unnest($1::text[]) AS r(room_id)"
        " CROSS JOIN LATERAL (SELECT json FROM events"
        "   WHERE room_id = r.room_id AND type = 'm.room.member' AND state_key = $2"
        "   AND stream_position <= $3 ORDER BY stream_position DESC LIMIT 1) e",
        list(room_ids),
        user_id,
        position,
    )
    return {row["room_id"]: row["membership"] for row in rows}


async def member_events_at(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, int]]
) -> dict[str, list[Event]]:
    """Per room, each (room, user, position)'s m.room.member event in force at the position
    (lazy-loaded members), in one round trip for every room."""
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT w.room_id, e.event_id, e.stream_position, e.json"
        " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS w(room_id, user_id, upto)"
        " CROSS JOIN LATERAL (SELECT event_id, stream_position, json FROM events"
        "   WHERE room_id = w.room_id AND type = 'm.room.member' AND state_key = w.user_id"
        "   AND stream_position <= w.upto ORDER BY stream_position DESC LIMIT 1) e",
        *columns(wanted, 3),
    )
    return _by_room(rows)
