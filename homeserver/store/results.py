"""Reading what PostgreSQL answered: a command's row count, a stored JSON object."""

from __future__ import annotations

from typing import Any

from homeserver.events.canonical import decode


def rows_affected(status: str) -> int:
    """The row count of a command's status tag (`DELETE 3` -> 3)."""
    return int(status.split()[-1])


def stored_object(text: str | None) -> dict[str, Any] | None:
    """JSON text from a column, when there is some and it holds an object."""
    if text is None:
        return None
    found = decode(text)
    return found if isinstance(found, dict) else None
