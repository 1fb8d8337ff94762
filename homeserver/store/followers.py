"""Followers' tracking positions and leases (not in the log), and their reads of the log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.events.model import Event
from homeserver.store.events import event_from_row

# A follower's lease is the session advisory lock (FOLLOWER_LOCKS, follower_id).
# The two-key form never meets the one-key locks (append, migrations).
FOLLOWER_LOCKS = 7_240_002


async def connect_for_leases(dsn: str, idle_timeout_ms: int) -> asyncpg.Connection:
    """A connection of its own, outside the pool, to hold this process's leases.

    `idle_timeout_ms` bounds how long a holder that stopped answering (a frozen
    process, a lost network) keeps its leases: the server ends a session idle
    that long, which releases its locks. The holder's check keeps it busier.
    """
    return await asyncpg.connect(
        dsn, server_settings={"idle_session_timeout": str(idle_timeout_ms)}
    )


async def register(conn: asyncpg.Connection, name: str, at_head: bool, now_ms: int) -> int:
    """The follower's ID, recording it first if it is new: at the head of the log
    (`at_head`: it sees only what is appended from now on) or before its first event."""
    await conn.execute(
        "INSERT INTO follower_positions (name, position, updated_ts)"
        " SELECT $1, CASE WHEN $2 THEN coalesce(max(stream_position), 0) ELSE 0 END, $3"
        " FROM events ON CONFLICT (name) DO NOTHING",
        name,
        at_head,
        now_ms,
    )
    return int(
        await conn.fetchval("SELECT follower_id FROM follower_positions WHERE name = $1", name)
    )


async def take_leases(conn: asyncpg.Connection, follower_ids: Collection[int]) -> set[int]:
    """Of `follower_ids`, those whose lease this session now holds (a lease held by
    another session is not waited for). With none asked, a check that the
    connection still answers."""
    rows = await conn.fetch(
        "SELECT id FROM unnest($2::int[]) AS id WHERE pg_try_advisory_lock($1, id)",
        FOLLOWER_LOCKS,
        list(follower_ids),
    )
    return {row["id"] for row in rows}


async def position(conn: asyncpg.Connection, name: str) -> int:
    return int(await conn.fetchval("SELECT position FROM follower_positions WHERE name = $1", name))


async def bound_idle_in_transaction(conn: asyncpg.Connection, timeout_ms: int) -> None:
    """For the caller's transaction: the server ends the session (so rolls the
    transaction back, releasing its locks) once it waits on the client that long."""
    await conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', $1, true)", str(timeout_ms)
    )


async def advance(
    conn: asyncpg.Connection, name: str, expected: int, new: int, now_ms: int
) -> bool:
    """Move the position from `expected` to `new` in the caller's transaction; False
    when it is no longer at `expected` (another process moved it: the caller's
    transaction must not commit). The row stays locked until the transaction ends,
    so a second writer of the same range waits, then finds the position moved."""
    status = await conn.execute(
        "UPDATE follower_positions SET position = $3, updated_ts = $4"
        " WHERE name = $1 AND position = $2",
        name,
        expected,
        new,
        now_ms,
    )
    return bool(status == "UPDATE 1")


@dataclass(frozen=True, slots=True)
class LogSlice:
    events: list[Event]  # in stream order
    end: int  # every event of the asked types at or before `end` is in `events`
    head: int  # the last position in the log when read


# One statement, so one snapshot: the head and the events up to it. Positions
# become visible in order (the append lock is held to commit), so every event
# at or before a visible head is visible too: nothing committed late is skipped.
_READ_AFTER = (
    "WITH log AS (SELECT coalesce(max(stream_position), 0) AS head FROM events)"
    " SELECT log.head, e.event_id, e.stream_position, e.json FROM log LEFT JOIN LATERAL ("
    "  SELECT event_id, stream_position, json FROM events"
    "  WHERE stream_position > $1 AND stream_position <= least(log.head, $1 + $3)"
    "  AND ($4::text[] IS NULL OR type = ANY($4::text[]))"
    "  ORDER BY stream_position LIMIT $2"
    " ) e ON true ORDER BY e.stream_position"
)


async def read_after(
    conn: asyncpg.Connection,
    after: int,
    limit: int,
    span: int,
    event_types: Sequence[str] | None,
) -> LogSlice:
    """Up to `limit` events after position `after` (of `event_types`, or all), looking
    at most `span` positions ahead."""
    rows = await conn.fetch(
        _READ_AFTER,
        after,
        limit,
        span,
        list(event_types) if event_types is not None else None,
    )
    head = int(rows[0]["head"])
    events = [event_from_row(row) for row in rows if row["event_id"] is not None]
    end = events[-1].stream_position if len(events) == limit else min(head, after + span)
    return LogSlice(events, max(end, after), head)
