"""Queries of full-text search: matching events, their context, and what decides who sees them.

One query finds a page of results. Its plan, measured on 200,000 indexed
messages (EXPLAIN ANALYZE, README "Search"): a bitmap scan of the GIN index
finds the events with the words, a hash join keeps those inside the searcher's
visible ranges (room, first and last position, from history visibility), a
window counts them all (`count`), and only the page is sorted out (top-N) and
highlighted. The ranges are computed by the service from the few events that
decide visibility, so the database never evaluates visibility per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.model import Event
from homeserver.store.history import selection_conditions

Order = Literal["rank", "recent"]
GroupKey = Literal["room_id", "sender"]
# Private-use characters mark highlighted words in ts_headline output; a value
# that already holds one is left without highlights rather than misread.
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_STOP = "\ue001"
_HEADLINE_OPTIONS = f'StartSel="{HIGHLIGHT_START}", StopSel="{HIGHLIGHT_STOP}", HighlightAll=true'


@dataclass(frozen=True)
class VisibleRange:
    """Positions first..last (inclusive) of one room that the searcher may see."""

    room_id: str
    first: int
    last: int


@dataclass(frozen=True)
class SearchQuery:
    tsquery: str
    ranges: Sequence[VisibleRange]
    keys: Sequence[str]
    order: Order
    limit: int
    types: Sequence[str] | None = None  # patterns: `*` matches any sequence
    not_types: Sequence[str] = ()
    senders: Sequence[str] | None = None
    not_senders: Sequence[str] = ()
    contains_url: bool | None = None
    # Keyset of the last result already returned: (rank, position) or (None, position).
    after: tuple[float | None, int] | None = None
    group_by: Sequence[GroupKey] = field(default_factory=tuple)


@dataclass(frozen=True)
class Match:
    event: Event
    rank: float
    headline: str | None
    # For each group key asked: whether the group has results after this one.
    more_in_group: dict[str, bool]


# `count` is exact up to this many matches; a search with more answers this many
# (the spec's `count` is "an approximate count"). An exact count of a common
# word's matches read a row of nearly every page of the index's table: 60 ms of
# a 70 ms search at 200,000 messages.
COUNT_LIMIT = 1000

# Set for the queries of one search. Each search's plan must be made for its own
# words: asyncpg prepares statements, and after five runs PostgreSQL may switch
# to a generic plan made without them, which on 200,000 messages looked the
# words up once per room (50 GIN scans: 600 ms for a common word). JIT
# compiling, which a large estimate turns on, costs more than it saves here.
_PLANNING = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off"


async def search(conn: asyncpg.Connection, query: SearchQuery) -> tuple[list[Match], int]:
    """Up to `limit` matches after the keyset, in the order asked, and the count of all
    (exact up to COUNT_LIMIT)."""
    if not query.ranges or query.limit <= 0:
        return [], 0
    args: list[object] = [
        [r.room_id for r in query.ranges],
        [r.first for r in query.ranges],
        [r.last for r in query.ranges],
        query.tsquery,
        list(query.keys),
    ]

    def param(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    conditions = [
        "s.vector @@ to_tsquery('english', $4)",
        # Redundant with the join, but lets the planner intersect the words with
        # an index scan of the rooms when the searcher is in few of them.
        "s.room_id = ANY($1::text[])",
        "s.key = ANY($5::text[])",
    ]
    conditions += selection_conditions(query, param, prefix="s.")
    if query.contains_url is not None:
        conditions.append(f"s.contains_url = {param(query.contains_url)}::boolean")
    by_rank = query.order == "rank"
    rank = ", ts_rank(s.vector, to_tsquery('english', $4)) AS rank" if by_rank else ""
    # Only the columns the page needs: a window over a common word's matches
    # spilled to disk with the room and sender carried along.
    grouped = "".join(f", s.{key}" for key in query.group_by)
    matched = f"""
        SELECT s.event_id, s.stream_position{grouped}{rank}
        FROM event_search s
        JOIN unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(room_id, first, last)
          ON s.room_id = r.room_id AND s.stream_position BETWEEN r.first AND r.last
        WHERE {" AND ".join(conditions)}
    """
    # Ranked or grouped, every match is read anyway: a window counts them (cheaper
    # than a second look-up of a common word's matches).
    counted_apart = not by_rank and not query.group_by
    async with conn.transaction():
        await conn.execute(_PLANNING)
        count = 0
        if counted_apart:
            # MATERIALIZED: planned to read every match (the GIN index), and read
            # only up to the limit.
            count = await conn.fetchval(
                f"WITH matched AS MATERIALIZED ({matched})"
                f" SELECT count(*) FROM (SELECT 1 FROM matched LIMIT ${len(args) + 1}) c",
                *args,
                COUNT_LIMIT,
            )
            if not count:
                return [], 0
        sql = _page_sql(
            query,
            matched,
            param,
            # Newest first, few matches: read them all through the GIN index and
            # sort out the page. Many: left to the planner, which walks the
            # positions backwards (event_search_position) until the page is full.
            # It must not when the searcher's rooms hold few of them (a word common
            # in other rooms), which its estimates cannot tell.
            materialize=counted_apart and count < COUNT_LIMIT,
        )
        rows = await conn.fetch(sql, *args)
    matches = [
        Match(
            event=Event.from_pdu(row["event_id"], decode(row["json"]), row["stream_position"]),
            rank=float(row["rank"]),
            headline=row["headline"],
            more_in_group={
                key: row[f"{key}_index"] < row[f"{key}_total"] for key in query.group_by
            },
        )
        for row in rows
    ]
    if not counted_apart:
        count = min(int(rows[0]["total"]), COUNT_LIMIT) if rows else 0
    return matches, count


def _page_sql(
    query: SearchQuery, matched: str, param: Callable[[object], str], *, materialize: bool
) -> str:
    """The page after the keyset, its events, ranks and highlights, from the matches."""
    by_rank = query.order == "rank"
    order = "rank DESC, stream_position DESC" if by_rank else "stream_position DESC"
    windows = ", count(*) OVER () AS total" if by_rank or query.group_by else ""
    windows += "".join(
        f", count(*) OVER (PARTITION BY {key}) AS {key}_total"
        f", row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS {key}_index"
        for key in query.group_by
    )
    keyset = "TRUE"
    if query.after is not None:
        after_rank, position = query.after
        if by_rank:
            keyset = (
                f"(rank, stream_position) < ({param(after_rank or 0.0)}::real, {param(position)})"
            )
        else:
            keyset = f"stream_position < {param(position)}"
    columns = "".join(f", page.{key}_total, page.{key}_index" for key in query.group_by)
    if windows:
        columns += ", page.total"
    # Ordered by recency, only the page's results are ranked (for the `rank` field).
    rank = "page.rank" if by_rank else "ts_rank(v.vector, to_tsquery('english', $4))"
    outer_order = "page." + order.replace(", ", ", page.")
    return f"""
        WITH matched AS {"MATERIALIZED" if materialize else "NOT MATERIALIZED"} ({matched})
        SELECT page.event_id, page.stream_position{columns}, e.json, {rank} AS rank,
               ts_headline('english', v.value, to_tsquery('english', $4),
                           {param(_HEADLINE_OPTIONS)}) AS headline
        FROM (
            SELECT * FROM (SELECT matched.*{windows} FROM matched) counted
            WHERE {keyset}
            ORDER BY {order}
            LIMIT {param(query.limit)}
        ) page
        JOIN event_search v ON v.event_id = page.event_id
        JOIN events e ON e.event_id = page.event_id
        ORDER BY {outer_order}
    """


def highlighted_words(headline: str | None) -> list[str]:
    """The words ts_headline marked in one value (lower-cased, as Synapse returns them)."""
    if not headline or headline.count(HIGHLIGHT_START) != headline.count(HIGHLIGHT_STOP):
        return []
    words: list[str] = []
    for piece in headline.split(HIGHLIGHT_START)[1:]:
        word, _, _ = piece.partition(HIGHLIGHT_STOP)
        if word:
            words.append(word.lower())
    return words


@dataclass(frozen=True, slots=True)
class DecidingEvent:
    """One event that decides what a user sees of a room: their own m.room.member
    or the room's m.room.history_visibility, with its content."""

    room_id: str
    stream_position: int
    is_membership: bool
    content: dict[str, Any]


async def deciding_events(
    conn: asyncpg.Connection, room_ids: Sequence[str], user_id: str
) -> list[DecidingEvent]:
    """The user's own m.room.member events and each room's history_visibility events,
    oldest first, for many rooms at once. Only their content is read: decoding whole
    signed events cost more than the query."""
    if not room_ids:
        return []
    rows = await conn.fetch(
        "SELECT room_id, stream_position, type = 'm.room.member' AS is_membership,"
        " (json::json -> 'content')::text AS content FROM events"
        " WHERE room_id = ANY($1::text[])"
        " AND ((type = 'm.room.member' AND state_key = $2)"
        " OR (type = 'm.room.history_visibility' AND state_key = ''))"
        " ORDER BY stream_position",
        list(room_ids),
        user_id,
    )
    found = []
    for row in rows:
        content = decode(row["content"]) if row["content"] is not None else {}
        found.append(
            DecidingEvent(
                row["room_id"],
                row["stream_position"],
                row["is_membership"],
                content if isinstance(content, dict) else {},
            )
        )
    return found


@dataclass(frozen=True)
class ContextWindow:
    """Around one result: events of `room_id` in [first, position) and (position, last]."""

    room_id: str
    position: int
    first: int
    last: int


async def context_events(
    conn: asyncpg.Connection, windows: Sequence[ContextWindow], before: int, after: int
) -> list[tuple[list[Event], list[Event]]]:
    """For each window: up to `before` events before its position (nearest first) and
    up to `after` events after it (oldest first). Two queries for all windows."""
    result: list[tuple[list[Event], list[Event]]] = [([], []) for _ in windows]
    if not windows:
        return result
    rooms = [w.room_id for w in windows]
    positions = [w.position for w in windows]
    for limit, bounds, going_back in (
        (before, [w.first for w in windows], True),
        (after, [w.last for w in windows], False),
    ):
        if limit <= 0:
            continue
        compare, direction = ("< c.position AND stream_position >= c.bound", "DESC")
        if not going_back:
            compare, direction = ("> c.position AND stream_position <= c.bound", "ASC")
        rows = await conn.fetch(
            "SELECT c.idx, e.event_id, e.stream_position, e.json"
            " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY"
            "   AS c(room_id, position, bound, idx)"
            " CROSS JOIN LATERAL (SELECT event_id, stream_position, json FROM events"
            f"   WHERE room_id = c.room_id AND stream_position {compare}"
            f"   ORDER BY stream_position {direction} LIMIT $4) e"
            f" ORDER BY c.idx, e.stream_position {direction}",
            rooms,
            positions,
            bounds,
            limit,
        )
        for row in rows:
            event = Event.from_pdu(row["event_id"], decode(row["json"]), row["stream_position"])
            result[row["idx"] - 1][0 if going_back else 1].append(event)
    return result


async def member_events_at(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, int]]
) -> list[Event | None]:
    """For each (room, user, position): the user's m.room.member event in force then."""
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT w.idx, e.event_id, e.stream_position, e.json"
        " FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY"
        "   AS w(room_id, user_id, position, idx)"
        " CROSS JOIN LATERAL (SELECT event_id, stream_position, json FROM events"
        "   WHERE room_id = w.room_id AND type = 'm.room.member' AND state_key = w.user_id"
        "   AND stream_position <= w.position ORDER BY stream_position DESC LIMIT 1) e",
        [room for room, _, _ in wanted],
        [user for _, user, _ in wanted],
        [position for _, _, position in wanted],
    )
    found: list[Event | None] = [None] * len(wanted)
    for row in rows:
        found[row["idx"] - 1] = Event.from_pdu(
            row["event_id"], decode(row["json"]), row["stream_position"]
        )
    return found
