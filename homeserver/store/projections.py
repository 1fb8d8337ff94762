"""Apply projection changes (from homeserver.projections) as SQL, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import asyncpg

from homeserver.projections.changes import Change, Delete, InsertIfAbsent, Table, Upsert, key_of


# Cached: built once per table and schema, not once per change.
@lru_cache(maxsize=512)
def _upsert_sql(table: Table, schema: str) -> str:
    columns = ", ".join(table.columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in table.columns if c not in table.key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {schema}.{table.name} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(table.key)}) {action}"
    )


@lru_cache(maxsize=512)
def _insert_sql(table: Table, schema: str) -> str:
    columns = ", ".join(table.columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    return (
        f"INSERT INTO {schema}.{table.name} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(table.key)}) DO NOTHING"
    )


@lru_cache(maxsize=512)
def _delete_sql(table: Table, schema: str) -> str:
    where = " AND ".join(f"{c} = ${i}" for i, c in enumerate(table.key, start=1))
    return f"DELETE FROM {schema}.{table.name} WHERE {where}"


def compact(changes: Iterable[Change]) -> list[Change]:
    """One change per row, with the effect of applying them all in order: the
    last upsert or delete wins; an insert-if-absent does nothing after an
    upsert or insert of its row, and after a delete of it is an upsert."""
    final: dict[tuple[str, tuple[Any, ...]], Change] = {}
    for change in changes:
        slot = (change.table.name, key_of(change))
        earlier = final.get(slot)
        if isinstance(change, InsertIfAbsent) and earlier is not None:
            if not isinstance(earlier, Delete):
                continue
            # The row is gone by then, so the insert happens whatever was there before.
            change = Upsert(change.table, change.row)
        final.pop(slot, None)  # re-insert so dict order follows the latest write
        final[slot] = change
    return list(final.values())


async def apply_changes(
    conn: asyncpg.Connection, changes: Iterable[Change], schema: str = "public"
) -> None:
    grouped: dict[tuple[str, type[Change]], tuple[str, list[tuple[Any, ...]]]] = {}
    for change in compact(changes):
        table = change.table
        if isinstance(change, Delete):
            args = tuple(change.key[c] for c in table.key)
        else:
            args = tuple(change.row[c] for c in table.columns)
        slot = (table.name, type(change))
        if slot not in grouped:
            grouped[slot] = (_statement(change, schema), [])
        grouped[slot][1].append(args)
    for sql, rows in grouped.values():
        await conn.executemany(sql, rows)


def _statement(change: Change, schema: str) -> str:
    if isinstance(change, Upsert):
        return _upsert_sql(change.table, schema)
    if isinstance(change, InsertIfAbsent):
        return _insert_sql(change.table, schema)
    return _delete_sql(change.table, schema)
