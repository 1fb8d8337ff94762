"""Registration tokens (projections), their uses, and uses pending in UIA sessions (not logged)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class TokenRow:
    token: str
    uses_allowed: int | None
    expiry_time: int | None
    pending: int
    completed: int


# $1: the oldest creation time of a live UIA session. A pending use counts while its
# session lives and has not registered.
_TOKENS = """
SELECT t.token, t.uses_allowed, t.expiry_time,
       (SELECT count(*) FROM registration_token_pending p
         WHERE p.token = t.token
           AND EXISTS (SELECT 1 FROM uia_sessions s
                        WHERE s.session_id = p.session_id AND s.created_ts >= $1)
           AND NOT EXISTS (SELECT 1 FROM registration_token_uses u
                            WHERE u.token = p.token AND u.session_id = p.session_id)
       ) AS pending,
       (SELECT count(*) FROM registration_token_uses u WHERE u.token = t.token) AS completed
  FROM registration_tokens t
"""


def _row(record: asyncpg.Record) -> TokenRow:
    return TokenRow(**dict(record))


async def tokens(
    conn: asyncpg.Connection, live_since_ms: int, now_ms: int, valid: bool | None
) -> list[TokenRow]:
    """Every token, or only the valid ones (`valid`), or only the others."""
    where = ""
    if valid is not None:
        usable = (
            "((uses_allowed IS NULL OR pending + completed < uses_allowed)"
            " AND (expiry_time IS NULL OR expiry_time > $2))"
        )
        where = f"WHERE {usable}" if valid else f"WHERE NOT {usable}"
    rows = await conn.fetch(
        f"SELECT * FROM ({_TOKENS}) listed {where} ORDER BY token",
        live_since_ms,
        *([now_ms] if valid is not None else []),
    )
    return [_row(row) for row in rows]


async def token(conn: asyncpg.Connection, token: str, live_since_ms: int) -> TokenRow | None:
    record = await conn.fetchrow(_TOKENS + " WHERE t.token = $2", live_since_ms, token)
    return _row(record) if record is not None else None


async def lock(conn: asyncpg.Connection, token: str) -> None:
    """Lock the token's row for the caller's transaction: checks of one token take turns."""
    await conn.execute("SELECT 1 FROM registration_tokens WHERE token = $1 FOR UPDATE", token)


async def is_pending(conn: asyncpg.Connection, token: str, session_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM registration_token_pending WHERE token = $1 AND session_id = $2",
            token,
            session_id,
        )
    )


async def add_pending(
    conn: asyncpg.Connection, token: str, session_id: str, now_ms: int, live_since_ms: int
) -> None:
    """Count a use as pending in the session; forget the pending uses of dead sessions."""
    await conn.execute(
        "DELETE FROM registration_token_pending p WHERE created_ts < $1"
        " AND NOT EXISTS (SELECT 1 FROM uia_sessions s"
        "                  WHERE s.session_id = p.session_id AND s.created_ts >= $1)",
        live_since_ms,
    )
    await conn.execute(
        "INSERT INTO registration_token_pending (token, session_id, created_ts)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        token,
        session_id,
        now_ms,
    )
