"""Third-party IDs of accounts (not in the log: migrations/0023_admin_threepids.sql)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class ThreepidRow:
    medium: str
    address: str
    added_at: int
    validated_at: int


async def threepids(conn: asyncpg.Connection, user_id: str) -> list[ThreepidRow]:
    rows = await conn.fetch(
        "SELECT medium, address, added_at, validated_at FROM user_threepids"
        " WHERE user_id = $1 ORDER BY added_at, medium, address",
        user_id,
    )
    return [ThreepidRow(**dict(row)) for row in rows]


async def owners(conn: asyncpg.Connection, wanted: list[tuple[str, str]]) -> dict[str, str]:
    """Who holds each of `wanted` (medium, address): "medium address" -> user ID."""
    rows = await conn.fetch(
        "SELECT medium, address, user_id FROM user_threepids"
        " WHERE (medium, address) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [medium for medium, _ in wanted],
        [address for _, address in wanted],
    )
    return {f"{row['medium']} {row['address']}": row["user_id"] for row in rows}


async def replace_threepids(
    conn: asyncpg.Connection, user_id: str, wanted: list[tuple[str, str]], now_ms: int
) -> None:
    """`user_id` holds exactly `wanted`; those already held keep their times. The caller
    checked, in its transaction, that no one else holds any of them."""
    await conn.execute(
        "DELETE FROM user_threepids WHERE user_id = $1"
        " AND (medium, address) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        user_id,
        [medium for medium, _ in wanted],
        [address for _, address in wanted],
    )
    await conn.executemany(
        "INSERT INTO user_threepids (medium, address, user_id, added_at, validated_at)"
        " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (medium, address) DO NOTHING",
        [(medium, address, user_id, now_ms) for medium, address in wanted],
    )
