"""The arguments of `unnest($1::text[], $2::text[], ...)`: many tuples as one array each
column, so a query handles all of them in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """The first `width` columns of `rows`, one list each (empty lists for no rows)."""
    return [[row[i] for row in rows] for i in range(width)]
