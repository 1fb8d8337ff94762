"""Accounts: users and devices (projections) and their secrets (passwords, tokens)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.store.results import fetch_column


@dataclass(frozen=True, slots=True)
class TokenOwner:
    user_id: str
    device_id: str
    deactivated: bool
    valid_until_ms: int | None = None  # an admin's token for acting as the user may expire


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_id: str
    display_name: str | None
    created_ts: int
    last_seen_ts: int | None


async def user_exists(conn: asyncpg.Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM users WHERE user_id = $1", user_id))


async def user_deactivated(conn: asyncpg.Connection, user_id: str) -> bool | None:
    """True/False for a known user, None for an unknown one."""
    value = await conn.fetchval("SELECT deactivated FROM users WHERE user_id = $1", user_id)
    return None if value is None else bool(value)


async def set_password_hash(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO user_passwords (user_id, password_hash) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash",
        user_id,
        password_hash,
    )


async def delete_password_hash(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM user_passwords WHERE user_id = $1", user_id)


async def password_hash(conn: asyncpg.Connection, user_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT password_hash FROM user_passwords WHERE user_id = $1", user_id
    )
    return str(value) if value is not None else None


async def insert_token(
    conn: asyncpg.Connection,
    token_hash: str,
    user_id: str,
    device_id: str,
    now_ms: int,
    valid_until_ms: int | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, valid_until_ms)"
        " VALUES ($1, $2, $3, $4, $5)",
        token_hash,
        user_id,
        device_id,
        now_ms,
        valid_until_ms,
    )


async def token_owner(conn: asyncpg.Connection, token_hash: str) -> TokenOwner | None:
    row = await conn.fetchrow(
        "SELECT t.user_id, t.device_id, coalesce(u.deactivated, TRUE) AS deactivated,"
        " t.valid_until_ms"
        " FROM access_tokens t LEFT JOIN users u USING (user_id) WHERE t.token_hash = $1",
        token_hash,
    )
    if row is None:
        return None
    return TokenOwner(row["user_id"], row["device_id"], row["deactivated"], row["valid_until_ms"])


async def device_ids_with_tokens(conn: asyncpg.Connection, user_id: str) -> list[str]:
    """The device IDs the user's access tokens are on (listed devices or not)."""
    return await fetch_column(
        conn,
        "SELECT DISTINCT device_id FROM access_tokens WHERE user_id = $1 ORDER BY device_id",
        user_id,
    )


async def delete_device_tokens(conn: asyncpg.Connection, user_id: str, device_id: str) -> list[str]:
    """Delete a device's tokens; returns their hashes."""
    return await fetch_column(
        conn,
        "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2 RETURNING token_hash",
        user_id,
        device_id,
    )


async def devices(conn: asyncpg.Connection, user_id: str) -> list[DeviceRow]:
    rows = await conn.fetch(
        "SELECT d.device_id, d.display_name, d.created_ts,"
        " (SELECT max(t.created_ts) FROM access_tokens t"
        "   WHERE t.user_id = d.user_id AND t.device_id = d.device_id) AS last_seen_ts"
        " FROM devices d WHERE d.user_id = $1 ORDER BY d.created_ts, d.device_id",
        user_id,
    )
    return [
        DeviceRow(r["device_id"], r["display_name"], r["created_ts"], r["last_seen_ts"])
        for r in rows
    ]


async def device(conn: asyncpg.Connection, user_id: str, device_id: str) -> DeviceRow | None:
    for row in await devices(conn, user_id):
        if row.device_id == device_id:
            return row
    return None


async def erased_users(conn: asyncpg.Connection) -> frozenset[str]:
    """The users who asked to be forgotten when deactivated (a partial index: few rows)."""
    rows = await conn.fetch("SELECT user_id FROM users WHERE erased")
    return frozenset(row["user_id"] for row in rows)
