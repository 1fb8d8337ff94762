"""Filters users uploaded (projection `user_filters`, from their account chains)."""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.store.results import stored_object


async def user_filter(
    conn: asyncpg.Connection, user_id: str, filter_id: str
) -> dict[str, Any] | None:
    text = await conn.fetchval(
        "SELECT filter FROM user_filters WHERE user_id = $1 AND filter_id = $2",
        user_id,
        filter_id,
    )
    return stored_object(text)
