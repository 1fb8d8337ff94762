"""The auditor's reads of the log (in order, in batches) and its purge of redacted content."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from homeserver.projections.changes import CHAIN_HEADS, Table

# An event as logged, with the version of its room (NULL for chains that are no room):
# its form, and the redaction algorithm its signature covers, depend on it.
_LOGGED = (
    "SELECT e.stream_position, e.event_id, e.json, r.room_version FROM events e"
    " LEFT JOIN rooms r ON r.room_id = e.room_id"
)

LoggedRow = tuple[int, str, str, str | None]


async def log_batches(
    conn: asyncpg.Connection,
    since: int = 0,
    room_id: str | None = None,
    batch: int = 5_000,
    until: int | None = None,
) -> AsyncIterator[list[LoggedRow]]:
    """Lists of (position, event ID, logged JSON, room version) after `since` (up to
    `until`), in order."""
    after = since
    last = until if until is not None else 2**62
    while True:
        if room_id is None:
            rows = await conn.fetch(
                _LOGGED + " WHERE e.stream_position > $1 AND e.stream_position <= $2"
                " ORDER BY e.stream_position LIMIT $3",
                after,
                last,
                batch,
            )
        else:
            rows = await conn.fetch(
                _LOGGED + " WHERE e.room_id = $4 AND e.stream_position > $1"
                " AND e.stream_position <= $2 ORDER BY e.stream_position LIMIT $3",
                after,
                last,
                batch,
                room_id,
            )
        if not rows:
            return
        yield [(row[0], row[1], row[2], row[3]) for row in rows]
        after = rows[-1][0]


async def chain_heads_at(conn: asyncpg.Connection, position: int) -> dict[str, str]:
    """The last event of every chain as of `position` (to verify from the middle of the log)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (room_id) room_id, event_id FROM events"
        " WHERE stream_position <= $1 ORDER BY room_id, stream_position DESC",
        position,
    )
    return {row["room_id"]: row["event_id"] for row in rows}


async def projected_chain_heads(
    conn: asyncpg.Connection, room_id: str | None = None
) -> dict[str, tuple[str, int]]:
    """The chain_heads projection: chain -> (event ID, position) of its last event."""
    rows = await conn.fetch(
        f"SELECT room_id, event_id, stream_position FROM {CHAIN_HEADS.name}"
        " WHERE $1::text IS NULL OR room_id = $1",
        room_id,
    )
    return {row[0]: (row[1], row[2]) for row in rows}


# --- replay: projections rebuilt into a scratch schema ----------------------------------------


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema)
    )


async def create_scratch_schema(
    conn: asyncpg.Connection, schema: str, tables: Sequence[Table]
) -> None:
    """An empty copy of every projection table: columns, defaults, checks and its key.

    Without the other indexes of the live table: the replay only needs the
    key (for ON CONFLICT); maintaining the search index's GIN as it goes cost
    more than all the reducers together.
    """
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    for table in tables:
        scratch = f'"{schema}".{table.name}'
        await conn.execute(
            f"CREATE TABLE {scratch} (LIKE public.{table.name}"
            " INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)"
        )
        await conn.execute(f"CREATE UNIQUE INDEX ON {scratch} ({', '.join(table.key)})")


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def differing_rows(
    conn: asyncpg.Connection, table: Table, schema: str, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows only in the live table, rows only in the replayed one), at most `limit` each."""
    columns = ", ".join(table.columns)
    order = ", ".join(table.key)
    live = f"public.{table.name}"
    replayed = f'"{schema}".{table.name}'
    only_live = await conn.fetch(
        f"SELECT {columns} FROM {live} EXCEPT ALL SELECT {columns} FROM {replayed}"
        f" ORDER BY {order} LIMIT {int(limit)}"
    )
    only_replayed = await conn.fetch(
        f"SELECT {columns} FROM {replayed} EXCEPT ALL SELECT {columns} FROM {live}"
        f" ORDER BY {order} LIMIT {int(limit)}"
    )
    return [dict(row) for row in only_live], [dict(row) for row in only_replayed]


async def row_count(conn: asyncpg.Connection, table: Table, schema: str = "public") -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table.name}'))


# --- purge-redacted -----------------------------------------------------------------------------


async def purge_candidates(
    conn: asyncpg.Connection, redacted_before_ms: int, limit: int
) -> list[LoggedRow]:
    """(position, event ID, logged JSON, room version) of events redacted before the time,
    not yet purged."""
    rows = await conn.fetch(
        "SELECT e.stream_position, e.event_id, e.json, v.room_version FROM redactions x"
        " JOIN events e ON e.event_id = x.redacts"
        " LEFT JOIN rooms v ON v.room_id = e.room_id"
        " JOIN events r ON r.event_id = x.redaction_id"
        " WHERE r.origin_server_ts < $1"
        " AND NOT EXISTS (SELECT 1 FROM purged_events p WHERE p.event_id = e.event_id)"
        " ORDER BY e.stream_position LIMIT $2",
        redacted_before_ms,
        limit,
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def replace_with_redacted_form(conn: asyncpg.Connection, position: int, json: str) -> None:
    """The one UPDATE the events trigger allows (migrations/0006_audit.sql, by room version
    since 0031), which records it."""
    await conn.execute("UPDATE events SET json = $1 WHERE stream_position = $2", json, position)


async def projection_row(
    conn: asyncpg.Connection, table: Table, key: Sequence[Any]
) -> dict[str, Any] | None:
    where = " AND ".join(f"{column} = ${i}" for i, column in enumerate(table.key, start=1))
    row = await conn.fetchrow(
        f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE {where}", *key
    )
    return dict(row) if row is not None else None
