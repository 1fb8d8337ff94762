"""Shadow-ban periods (`shadow_ban_periods`, a projection of the moderation chain).

The rule they make is rooms/shadow_bans.py: a user's events sent while shadow-banned
are hidden from everyone else. `hidden_sql` is that rule's SQL form, for the queries
that page or count in the database what a user may see (search, bundled
aggregations), so their pages and counts leave those events out too.
"""

from __future__ import annotations

import asyncpg

from homeserver.events.content.shadow_bans import BanPeriod


async def ban_periods(conn: asyncpg.Connection) -> list[BanPeriod]:
    rows = await conn.fetch(
        "SELECT user_id, banned_at, unbanned_at FROM shadow_ban_periods ORDER BY banned_at"
    )
    return [BanPeriod(row["user_id"], row["banned_at"], row["unbanned_at"]) for row in rows]


async def current_ban(conn: asyncpg.Connection, user_id: str) -> int | None:
    """Where the user's ban in force began (its fact's position); None if not banned."""
    found = await conn.fetchval(
        "SELECT banned_at FROM shadow_ban_periods WHERE user_id = $1 AND unbanned_at IS NULL",
        user_id,
    )
    return int(found) if found is not None else None


async def banned_among(conn: asyncpg.Connection, user_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT user_id FROM shadow_ban_periods"
        " WHERE user_id = ANY($1::text[]) AND unbanned_at IS NULL",
        user_ids,
    )
    return {row["user_id"] for row in rows}


def hidden_sql(sender: str, position: str, viewer: str) -> str:
    """A SQL condition: the (non-state) event sent by `sender` at `position` is hidden from
    `viewer` (SQL expressions; a NULL viewer is no one, so it is hidden from all)."""
    return (
        "EXISTS (SELECT 1 FROM shadow_ban_periods sb"
        f" WHERE sb.user_id = {sender} AND {sender} IS DISTINCT FROM {viewer}"
        f" AND {position} > sb.banned_at"
        f" AND (sb.unbanned_at IS NULL OR {position} < sb.unbanned_at))"
    )
