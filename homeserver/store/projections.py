"""Apply projection changes (from homeserver.projections) as SQL, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from homeserver.projections.changes import Change, Delete, InsertIfAbsent, Table, Upsert, key_of


def _upsert_sql(table: Table, schema: str) -> str:
    columns = ", ".join(table.columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in table.columns if c not in table.key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {schema}.{table.name} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(table.key)}) {action}"
    )


def _insert_sql(table: Table, schema: str) -> str:
    columns = ", ".join(table.columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    return (
        f"INSERT INTO {schema}.{table.name} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(table.key)}) DO NOTHING"
    )


def _delete_sql(table: Table, schema: str) -> str:
    where = " AND ".join(f"{c} = ${i}" for i, c in enumerate(table.key, start=1))
    return f"DELETE FROM {schema}.{table.name} WHERE {where}"


def compact(changes: Iterable[Change]) -> list[Change]:
    """One change per row: the last upsert or delete wins, the first insert-if-absent wins."""
    final: dict[tuple[str, tuple[Any, ...]], Change] = {}
    for change in changes:
        slot = (change.table.name, key_of(change))
        earlier = final.get(slot)
        if isinstance(change, InsertIfAbsent) and earlier is not None:
            continue
        final.pop(slot, None)  # re-insert so dict order follows the latest write
        final[slot] = change
    return list(final.values())


async def apply_changes(
    conn: asyncpg.Connection, changes: Iterable[Change], schema: str = "public"
) -> None:
    grouped: dict[tuple[str, str], tuple[str, list[tuple[Any, ...]]]] = {}
    for change in compact(changes):
        table = change.table
        if isinstance(change, Upsert):
            slot = (table.name, "upsert")
            sql = _upsert_sql(table, schema)
            args = tuple(change.row[c] for c in table.columns)
        elif isinstance(change, InsertIfAbsent):
            slot = (table.name, "insert")
            sql = _insert_sql(table, schema)
            args = tuple(change.row[c] for c in table.columns)
        else:
            assert isinstance(change, Delete)
            slot = (table.name, "delete")
            sql = _delete_sql(table, schema)
            args = tuple(change.key[c] for c in table.key)
        grouped.setdefault(slot, (sql, []))[1].append(args)
    for sql, rows in grouped.values():
        await conn.executemany(sql, rows)
