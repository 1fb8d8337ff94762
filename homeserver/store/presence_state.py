"""Presence records shared in PostgreSQL (workers without Redis; migrations/0022).

A record is written compare-and-set on its version; a visible change takes
its position from the one-row counter, locked until commit, so positions
become visible in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.store.results import fetch_column
from homeserver.store.unnest import columns

_COLUMNS = (
    "user_id, version, position, presence, status_msg, currently_active,"
    " last_active_ts, last_sync_ts, chosen_ts"
)


class Conflict(Exception):
    """Another process wrote the user since the version read."""


async def open_position(conn: asyncpg.Connection, start: int) -> None:
    await conn.execute(
        "INSERT INTO presence_position (position) VALUES ($1) ON CONFLICT DO NOTHING", start
    )


async def position(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM presence_position"))


async def records(conn: asyncpg.Connection, user_ids: Sequence[str]) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} FROM presence_users WHERE user_id = ANY($1::text[])",
            list(user_ids),
        )
    )


async def commit(
    conn: asyncpg.Connection,
    user_id: str,
    version: int,
    old_position: int,
    visible: bool,
    deadline: int | None,
    fields: tuple[str, str | None, bool, int, int, int],
) -> int:
    """Store the record if its version is still `version` (0: none yet); its position.
    Raises Conflict otherwise."""
    async with conn.transaction():
        new_position = old_position
        if visible:
            new_position = await conn.fetchval(
                "UPDATE presence_position SET position = position + 1 RETURNING position"
            )
        values = (user_id, version + 1, new_position, deadline, *fields)
        if version == 0:
            written = await conn.fetchval(
                "INSERT INTO presence_users (user_id, version, position, deadline, presence,"
                " status_msg, currently_active, last_active_ts, last_sync_ts, chosen_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (user_id) DO NOTHING RETURNING 1",
                *values,
            )
        else:
            written = await conn.fetchval(
                "UPDATE presence_users SET version = $2, position = $3, deadline = $4,"
                " presence = $5, status_msg = $6, currently_active = $7, last_active_ts = $8,"
                " last_sync_ts = $9, chosen_ts = $10 WHERE user_id = $1 AND version = $11"
                " RETURNING 1",
                *values,
                version,
            )
        if written is None:
            raise Conflict(user_id)
    return int(new_position)


async def touch(
    conn: asyncpg.Connection, writes: Sequence[tuple[str, int, int, int | None]]
) -> set[str]:
    """Heartbeats in one statement: (user, version read, last sync time, deadline), each
    written if its version still holds (no position: nothing visible changes); the users
    written."""
    rows = await conn.fetch(
        "UPDATE presence_users p SET version = p.version + 1, last_sync_ts = t.last_sync_ts,"
        " deadline = t.deadline"
        " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])"
        " AS t(user_id, version, last_sync_ts, deadline)"
        " WHERE p.user_id = t.user_id AND p.version = t.version RETURNING p.user_id",
        *columns(writes, 4),
    )
    return {row["user_id"] for row in rows}


async def changed(conn: asyncpg.Connection, after: int, upto: int) -> list[str]:
    return await fetch_column(
        conn,
        "SELECT user_id FROM presence_users WHERE position > $1 AND position <= $2",
        after,
        upto,
    )


async def due(conn: asyncpg.Connection, now: int, limit: int) -> tuple[list[str], int | None]:
    rows = await conn.fetch(
        "SELECT user_id FROM presence_users WHERE deadline <= $1 ORDER BY deadline LIMIT $2",
        now,
        limit,
    )
    upcoming = await conn.fetchval(
        "SELECT min(deadline) FROM presence_users WHERE deadline > $1", now
    )
    return [row["user_id"] for row in rows], upcoming
