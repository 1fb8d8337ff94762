"""User-interactive auth sessions (not in the log: short-lived, shared by every process)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    operation: str
    user_id: str | None
    params: dict[str, Any]
    results: dict[str, Any]
    data: dict[str, Any]


_COLUMNS = "session_id, operation, user_id, params::text, results::text, data::text"


def _row(record: asyncpg.Record) -> SessionRow:
    return SessionRow(
        record["session_id"],
        record["operation"],
        record["user_id"],
        json.loads(record["params"]),
        json.loads(record["results"]),
        json.loads(record["data"]),
    )


async def session(
    conn: asyncpg.Connection, session_id: str, min_ts: int, *, for_update: bool = False
) -> SessionRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM uia_sessions WHERE session_id = $1 AND created_ts >= $2"
        + (" FOR UPDATE" if for_update else ""),
        session_id,
        min_ts,
    )
    return None if record is None else _row(record)


async def create(
    conn: asyncpg.Connection,
    session_id: str,
    now_ms: int,
    operation: str,
    user_id: str | None,
    params: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO uia_sessions (session_id, created_ts, operation, user_id, params)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (session_id) DO NOTHING",
        session_id,
        now_ms,
        operation,
        user_id,
        json.dumps(params),
    )


async def merge(
    conn: asyncpg.Connection,
    session_id: str,
    *,
    params: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> SessionRow | None:
    """Add keys to a session's params, results and data in one statement (so two
    requests of one session completing different stages at once both count)."""
    record = await conn.fetchrow(
        "UPDATE uia_sessions SET params = params || $2::jsonb, results = results || $3::jsonb,"
        f" data = data || $4::jsonb WHERE session_id = $1 RETURNING {_COLUMNS}",
        session_id,
        json.dumps(params or {}),
        json.dumps(results or {}),
        json.dumps(data or {}),
    )
    return None if record is None else _row(record)


async def delete(conn: asyncpg.Connection, session_id: str) -> None:
    await conn.execute("DELETE FROM uia_sessions WHERE session_id = $1", session_id)


async def delete_stale(conn: asyncpg.Connection, min_ts: int) -> None:
    await conn.execute("DELETE FROM uia_sessions WHERE created_ts < $1", min_ts)
