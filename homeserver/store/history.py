"""Queries of room history: pages of a room's events, and what decides who may see them.

Every page query is a range scan of the index events(room_id, stream_position),
in the direction asked, stopped by LIMIT; the filter's conditions are applied
by the database so a selective filter does not pull non-matching rows over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.query_args import QueryArgs


@dataclass(frozen=True)
class RelationSelection:
    """Events relating to one event (GET /relations), by rel_type and event type if given.
    A redacted relation no longer counts (redaction strips its m.relates_to)."""

    relates_to: str
    rel_type: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class EventSelection:
    """Which events a page keeps: a RoomEventFilter's conditions, for SQL.

    `types` and `not_types` are patterns in which `*` matches any sequence."""

    types: list[str] | None = None
    not_types: Sequence[str] = ()
    senders: list[str] | None = None
    not_senders: Sequence[str] = ()
    contains_url: bool | None = None
    relation: RelationSelection | None = None


class Selecting(Protocol):
    """The type and sender conditions of a RoomEventFilter (EventSelection, a search query)."""

    @property
    def types(self) -> Sequence[str] | None: ...
    @property
    def not_types(self) -> Sequence[str]: ...
    @property
    def senders(self) -> Sequence[str] | None: ...
    @property
    def not_senders(self) -> Sequence[str]: ...


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def selection_conditions(
    chosen: Selecting, param: Callable[[object], str], prefix: str = ""
) -> list[str]:
    """SQL conditions on the `type` and `sender` columns (named with `prefix`);
    `param(value)` adds a query argument and returns its placeholder."""
    conditions = []
    if chosen.types is not None:
        likes = param([_like(t) for t in chosen.types])
        conditions.append(f"{prefix}type LIKE ANY({likes}::text[])")
    if chosen.not_types:
        likes = param([_like(t) for t in chosen.not_types])
        conditions.append(f"NOT ({prefix}type LIKE ANY({likes}::text[]))")
    if chosen.senders is not None:
        conditions.append(f"{prefix}sender = ANY({param(list(chosen.senders))}::text[])")
    if chosen.not_senders:
        conditions.append(f"NOT ({prefix}sender = ANY({param(list(chosen.not_senders))}::text[]))")
    return conditions


def event_conditions(chosen: EventSelection, param: Callable[[object], str]) -> list[str]:
    """SQL conditions on an `events` row for a RoomEventFilter's type, sender and
    `contains_url` tests (the relation, if any, is the caller's)."""
    conditions = selection_conditions(chosen, param)
    if chosen.contains_url is not None:
        has_url = "coalesce(jsonb_typeof(json::jsonb -> 'content' -> 'url') = 'string', false)"
        conditions.append(f"{has_url} = {param(chosen.contains_url)}::boolean")
    return conditions


async def room_events(
    conn: asyncpg.Connection,
    room_id: str,
    after: int,
    upto: int,
    *,
    backwards: bool,
    limit: int,
    selection: EventSelection | None = None,
) -> list[Event]:
    """Up to `limit` events of the room at positions in (after, upto], nearest `upto`
    first when `backwards`, else nearest `after` first."""
    if limit <= 0 or upto <= after:
        return []
    conditions = ["room_id = $1", "stream_position > $2", "stream_position <= $3"]
    args = QueryArgs(room_id, after, upto, limit)
    chosen = selection or EventSelection()
    conditions += event_conditions(chosen, args.param)
    if (relation := chosen.relation) is not None:
        related = [f"r.relates_to = {args.param(relation.relates_to)}"]
        if relation.rel_type is not None:
            related.append(f"r.rel_type = {args.param(relation.rel_type)}")
        if relation.event_type is not None:
            related.append(f"r.type = {args.param(relation.event_type)}")
        conditions.append(
            "event_id IN (SELECT r.event_id FROM event_relations r"
            f" WHERE {' AND '.join(related)}"
            " AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r.event_id))"
        )
    order = "DESC" if backwards else "ASC"
    rows = await conn.fetch(
        "SELECT event_id, stream_position, json FROM events"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY stream_position {order} LIMIT $4",
        *args.values,
    )
    return [event_from_row(row) for row in rows]


async def visibility_events(
    conn: asyncpg.Connection, room_ids: Sequence[str], user_id: str
) -> tuple[dict[str, tuple[list[Event], int | None]], frozenset[str]]:
    """Per room, the user's own m.room.member events and the room's
    m.room.history_visibility events, oldest first: all that decides which of the room's
    events the user may see; and where the user last forgot the room (None if never), in
    the same round trip, for every room at once. Without a membership event there is
    nothing to forget, so no row needs to carry it.

    Also the erased users (deactivated with `erase`), whose messages only those joined
    when they were sent may see; read once (an InitPlan, on a partial index) and carried
    by every row. No row: nothing of these rooms is visible, so none are needed."""
    rows = await conn.fetch(
        "SELECT room_id, event_id, stream_position, json,"
        " (SELECT f.stream_position FROM forgotten_rooms f"
        "   WHERE f.user_id = $2 AND f.room_id = e.room_id) AS forgotten_at,"
        " (SELECT array_agg(u.user_id) FROM users u WHERE u.erased) AS erased"
        " FROM events e WHERE room_id = ANY($1::text[])"
        " AND ((type = 'm.room.member' AND state_key = $2)"
        " OR (type = 'm.room.history_visibility' AND state_key = ''))"
        " ORDER BY stream_position",
        list(room_ids),
        user_id,
    )
    found: dict[str, tuple[list[Event], int | None]] = {room_id: ([], None) for room_id in room_ids}
    for row in rows:
        events, forgotten_at = found[row["room_id"]]
        events.append(event_from_row(row))
        if forgotten_at is None and row["forgotten_at"] is not None:
            found[row["room_id"]] = (events, row["forgotten_at"])
    erased = frozenset(rows[0]["erased"] or ()) if rows else frozenset()
    return found, erased


async def last_room_position(conn: asyncpg.Connection, room_id: str, upto: int) -> int | None:
    """The position of the room's last event at or before `upto` (None if it has none)."""
    position = await conn.fetchval(
        "SELECT max(stream_position) FROM events WHERE room_id = $1 AND stream_position <= $2",
        room_id,
        upto,
    )
    return int(position) if position is not None else None


async def member_events_at(
    conn: asyncpg.Connection, room_id: str, user_ids: Sequence[str], position: int
) -> list[Event]:
    """Each user's m.room.member event in force at `position` (for lazy-loading members)."""
    if not user_ids:
        return []
    rows = await conn.fetch(
        "SELECT e.event_id, e.stream_position, e.json FROM unnest($2::text[]) AS u(user_id)"
        " CROSS JOIN LATERAL (SELECT event_id, stream_position, json FROM events"
        "   WHERE room_id = $1 AND type = 'm.room.member' AND state_key = u.user_id"
        "   AND stream_position <= $3 ORDER BY stream_position DESC LIMIT 1) e"
        " ORDER BY e.stream_position",
        room_id,
        list(dict.fromkeys(user_ids)),
        position,
    )
    return [event_from_row(row) for row in rows]
