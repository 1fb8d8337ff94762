"""Reading what PostgreSQL answered: one column of rows, a command's row count, a stored
JSON object."""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.events.canonical import decode


async def fetch_column(conn: asyncpg.Connection, query: str, *args: object) -> list[Any]:
    """The first column of every row `query` returns, in order."""
    return [row[0] for row in await conn.fetch(query, *args)]


def rows_affected(status: str) -> int:
    """The row count of a command's status tag (`DELETE 3` -> 3)."""
    return int(status.split()[-1])


def stored_object(text: str | None) -> dict[str, Any] | None:
    """JSON text from a column, when there is some and it holds an object."""
    if text is None:
        return None
    found = decode(text)
    return found if isinstance(found, dict) else None
