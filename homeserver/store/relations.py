"""Relations as clients see them bundled (the latest edit, thread summaries) and the thread
list of a room, from `event_relations`; redacted relations do not count, nor those hidden
from the viewer as sent by one shadow-banned then (store/shadow_bans.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events.model import Event
from homeserver.store.events import event_from_row
from homeserver.store.shadow_bans import hidden_sql
from homeserver.store.unnest import columns

_LIVE = "NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r.event_id)"


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    count: int
    latest: Event
    participants: frozenset[str]


async def latest_edits(
    conn: asyncpg.Connection, targets: Sequence[tuple[str, str]], viewer: str | None
) -> dict[str, Event]:
    """For (event ID, sender) pairs, the latest live m.replace of each by its own sender
    that `viewer` may see."""
    if not targets:
        return {}
    rows = await conn.fetch(
        "SELECT DISTINCT ON (r.relates_to) r.relates_to, e.event_id, e.stream_position, e.json"
        " FROM unnest($1::text[], $2::text[]) AS w(event_id, sender)"
        " JOIN event_relations r ON r.relates_to = w.event_id AND r.rel_type = 'm.replace'"
        "   AND r.sender = w.sender"
        f" JOIN events e ON e.event_id = r.event_id WHERE {_LIVE}"
        f" AND NOT {hidden_sql('r.sender', 'e.stream_position', '$3::text')}"
        " ORDER BY r.relates_to, e.stream_position DESC",
        *columns(targets, 2),
        viewer,
    )
    return {row["relates_to"]: event_from_row(row) for row in rows}


async def thread_summaries(
    conn: asyncpg.Connection, roots: Sequence[str], viewer: str | None
) -> dict[str, ThreadSummary]:
    """For thread roots among `roots`: how many live replies `viewer` may see, the latest,
    and who replied."""
    if not roots:
        return {}
    rows = await conn.fetch(
        "SELECT s.relates_to, s.n, s.senders, e.event_id, e.stream_position, e.json FROM ("
        "  SELECT r.relates_to, count(*) AS n, array_agg(DISTINCT r.sender) AS senders,"
        "  max(e.stream_position) AS latest"
        "  FROM event_relations r JOIN events e ON e.event_id = r.event_id"
        "  WHERE r.relates_to = ANY($1::text[]) AND r.rel_type = 'm.thread'"
        f"  AND {_LIVE} AND NOT {hidden_sql('r.sender', 'e.stream_position', '$2::text')}"
        "  GROUP BY r.relates_to) s"
        " JOIN events e ON e.stream_position = s.latest",
        list(roots),
        viewer,
    )
    return {
        row["relates_to"]: ThreadSummary(row["n"], event_from_row(row), frozenset(row["senders"]))
        for row in rows
    }


async def threads(
    conn: asyncpg.Connection,
    room_id: str,
    before: int | None,
    limit: int,
    participant: str | None,
    viewer: str,
) -> list[tuple[str, int]]:
    """The room's threads, latest activity first: (root event ID, position of its latest
    live reply `viewer` may see), those with activity before `before` (when given), at
    most `limit`; only those `participant` started or replied to, when given."""
    rows = await conn.fetch(
        "SELECT r.relates_to, max(e.stream_position) AS latest"
        " FROM event_relations r JOIN events e ON e.event_id = r.event_id"
        f" WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND {_LIVE}"
        f" AND NOT {hidden_sql('r.sender', 'e.stream_position', '$5::text')}"
        " GROUP BY r.relates_to"
        " HAVING ($2::bigint IS NULL OR max(e.stream_position) < $2)"
        " AND ($4::text IS NULL OR bool_or(r.sender = $4) OR EXISTS (SELECT 1 FROM events t"
        "   WHERE t.event_id = r.relates_to AND t.sender = $4))"
        " ORDER BY latest DESC LIMIT $3",
        room_id,
        before,
        limit,
        participant,
        viewer,
    )
    return [(row["relates_to"], row["latest"]) for row in rows]
