"""Queries of full-text search: matching events, their context, and what decides who sees them.

A page of results takes two queries in one transaction (plans measured with
EXPLAIN ANALYZE on 200,000 indexed messages, docs/search_and_directory.md):

- newest first: a count of the matches inside the searcher's visible ranges
  (room, first and last position, from history visibility), stopped at
  COUNT_LIMIT; then the page. Under the limit the page comes from a bitmap scan
  of the GIN index and a top-N sort; over it (a common word) the planner walks
  positions backwards and stops when the page is full.
- by rank: one query; every match is ranked, a window counts them.

Only the page is highlighted, joined to its events and, newest first, ranked.
The ranges are computed by the service from the few events that decide
visibility, so the database never evaluates visibility per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.history import selection_conditions
from homeserver.store.query_args import QueryArgs
from homeserver.store.shadow_bans import hidden_sql

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
    # The searcher: what shadow-banned users sent while banned is left out unless theirs.
    viewer: str | None = None


@dataclass(frozen=True)
class Match:
    event: Event
    rank: float
    headline: str | None
    # For each group key asked: whether the group has results after this one.
    more_in_group: dict[str, bool]


# `count` is exact up to this many matches; a search with more answers this many
# (the spec's `count` is "an approximate count"). Counting all of a common
# word's matches read nearly every page of the table: 8,315 matches of 200,000
# messages took 50-60 ms; to the limit, 10-20 ms.
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
    args = QueryArgs(
        [r.room_id for r in query.ranges],
        [r.first for r in query.ranges],
        [r.last for r in query.ranges],
        query.tsquery,
        list(query.keys),
    )

    conditions = [
        "s.vector @@ to_tsquery('english', $4)",
        # Redundant with the join, but lets the planner intersect the words with
        # an index scan of the rooms when the searcher is in few of them.
        "s.room_id = ANY($1::text[])",
        "s.key = ANY($5::text[])",
    ]
    conditions += selection_conditions(query, args.param, prefix="s.")
    if query.contains_url is not None:
        conditions.append(f"s.contains_url = {args.param(query.contains_url)}::boolean")
    conditions.append(
        f"NOT {hidden_sql('s.sender', 's.stream_position', args.param(query.viewer) + '::text')}"
    )
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
    matching_args = list(args.values)
    count = 0
    async with conn.transaction():
        await conn.execute(_PLANNING)
        rows = await conn.fetch(_page_sql(query, matched, args.param), *args.values)
        if rows:
            count = min(int(rows[0]["total"]), COUNT_LIMIT)
        elif query.after is not None:
            # Past the last page (its results were redacted since): still count.
            count = await conn.fetchval(
                f"WITH matched AS MATERIALIZED ({matched})"
                f" SELECT count(*) FROM (SELECT 1 FROM matched LIMIT ${len(matching_args) + 1}) c",
                *matching_args,
                COUNT_LIMIT,
            )
    matches = [
        Match(
            event=event_from_row(row),
            rank=float(row["rank"]),
            headline=row["headline"],
            more_in_group={
                key: row[f"{key}_index"] < row[f"{key}_total"] for key in query.group_by
            },
        )
        for row in rows
    ]
    return matches, count


def _page_sql(query: SearchQuery, matched: str, param: Callable[[object], str]) -> str:
    """The page after the keyset, its events, ranks and highlights, and on each row
    the count of all matches (`total`)."""
    by_rank = query.order == "rank"
    order = "rank DESC, stream_position DESC" if by_rank else "stream_position DESC"
    keyset = "TRUE"
    if query.after is not None:
        after_rank, position = query.after
        if by_rank:
            keyset = (
                f"(rank, stream_position) < ({param(after_rank or 0.0)}::real, {param(position)})"
            )
        else:
            keyset = f"stream_position < {param(position)}"
    limit = param(query.limit)
    if by_rank or query.group_by:
        # Ranked or grouped, every match is read anyway: a window counts them
        # (cheaper than a second look-up of a common word's matches).
        windows = "".join(
            f", count(*) OVER (PARTITION BY {key}) AS {key}_total"
            f", row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS {key}_index"
            for key in query.group_by
        )
        common = f"matched AS ({matched})"
        total = "page.total"
        page = f"""
            SELECT * FROM (
                SELECT matched.*, count(*) OVER () AS total{windows} FROM matched
            ) counted
            WHERE {keyset} ORDER BY {order} LIMIT {limit}
        """
    else:
        # Newest first: the matches are counted up to COUNT_LIMIT (MATERIALIZED:
        # planned to read them all through the GIN index, read only that far).
        # Under it, the page is sorted out of them. Over it, a second branch is
        # left to the planner, which walks the positions backwards
        # (event_search_position) until the page is full. It must not when the
        # searcher's rooms hold few of the matches (a word common in other
        # rooms): its estimates cannot tell, the count can. Each branch runs
        # only when its condition on the count (an InitPlan) holds.
        cap = param(COUNT_LIMIT)
        common = (
            f"matched AS MATERIALIZED ({matched}),"
            f" counted AS (SELECT count(*) AS total FROM (SELECT 1 FROM matched LIMIT {cap}) c)"
        )
        total = "(SELECT total FROM counted)"
        page = f"""
            (SELECT event_id, stream_position FROM matched
             WHERE {keyset} AND {total} < {cap}
             ORDER BY stream_position DESC LIMIT {limit})
            UNION ALL
            (SELECT event_id, stream_position FROM ({matched}) walked
             WHERE {keyset} AND {total} >= {cap}
             ORDER BY stream_position DESC LIMIT {limit})
        """
    columns = "".join(f", page.{key}_total, page.{key}_index" for key in query.group_by)
    # Ordered by recency, only the page's results are ranked (for the `rank` field).
    rank = "page.rank" if by_rank else "ts_rank(v.vector, to_tsquery('english', $4))"
    outer_order = "page." + order.replace(", ", ", page.")
    return f"""
        WITH {common}
        SELECT page.event_id, page.stream_position, {total} AS total{columns}, e.json,
               {rank} AS rank,
               ts_headline('english', v.value, to_tsquery('english', $4),
                           {param(_HEADLINE_OPTIONS)}) AS headline
        FROM ({page}) page
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
    up to `after` events after it (oldest first). One query for all windows."""
    result: list[tuple[list[Event], list[Event]]] = [([], []) for _ in windows]
    if not windows or (before <= 0 and after <= 0):
        return result
    rows = await conn.fetch(
        "SELECT c.idx, e.before, e.event_id, e.stream_position, e.json"
        " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY"
        "   AS c(room_id, position, first, last, idx)"
        " CROSS JOIN LATERAL ("
        "   (SELECT TRUE AS before, event_id, stream_position, json FROM events"
        "    WHERE room_id = c.room_id AND stream_position < c.position"
        "    AND stream_position >= c.first ORDER BY stream_position DESC LIMIT $5)"
        "   UNION ALL"
        "   (SELECT FALSE, event_id, stream_position, json FROM events"
        "    WHERE room_id = c.room_id AND stream_position > c.position"
        "    AND stream_position <= c.last ORDER BY stream_position LIMIT $6)) e"
        " ORDER BY c.idx, e.before, abs(e.stream_position - c.position)",
        [w.room_id for w in windows],
        [w.position for w in windows],
        [w.first for w in windows],
        [w.last for w in windows],
        max(before, 0),
        max(after, 0),
    )
    for row in rows:
        event = event_from_row(row)
        result[row["idx"] - 1][0 if row["before"] else 1].append(event)
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
        found[row["idx"] - 1] = event_from_row(row)
    return found
