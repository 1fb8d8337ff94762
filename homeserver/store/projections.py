"""Apply projection changes (from homeserver.projections) as SQL, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from homeserver.projections.changes import Change, Delete, InsertIfAbsent, Table, Upsert, key_of


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
    """Apply `changes` in the caller's transaction, as one statement."""
    params: list[str] = []
    statements = changes_as_ctes(changes, schema, params)
    if statements:
        await conn.execute(with_statements(statements, "SELECT 1"), *params)


def with_statements(statements: list[str], main: str) -> str:
    """`main` with `statements` run before it as data-modifying CTEs (all of them run,
    whether or not `main` reads them)."""
    if not statements:
        return main
    return "WITH " + ", ".join(f"w{i} AS ({s})" for i, s in enumerate(statements)) + " " + main


def changes_as_ctes(changes: Iterable[Change], schema: str, params: list[str]) -> list[str]:
    """Data-modifying statements applying `changes`, to run as the CTEs of one
    statement: one per table and kind of change, each reading its rows from one
    JSON parameter it appends to `params` (numbered by its place there).

    One statement is one round trip however many tables a batch touches; the
    appender's batches cost a loop turn per round trip on a busy server.
    `compact` leaves at most one change per row, which data-modifying CTEs need:
    they run on one snapshot and cannot see each other's writes.
    """
    grouped: dict[tuple[Table, str], list[dict[str, Any]]] = {}
    for change in compact(changes):
        table = change.table
        if isinstance(change, Delete):
            row = {column: change.key[column] for column in table.key}
        else:
            row = {column: change.row[column] for column in table.columns}
        kind = type(change).__name__
        grouped.setdefault((table, kind), []).append(row)
    statements = []
    for (table, kind), rows in grouped.items():
        params.append(orjson.dumps(rows).decode())
        statements.append(_json_rows_sql(table, kind, schema, len(params)))
    return statements


@lru_cache(maxsize=512)
def _json_rows_sql(table: Table, kind: str, schema: str, param: int) -> str:
    rows = f"json_populate_recordset(NULL::{schema}.{table.name}, ${param}::json)"
    if kind == "Delete":
        where = " AND ".join(f"t.{c} = d.{c}" for c in table.key)
        return f"DELETE FROM {schema}.{table.name} t USING {rows} d WHERE {where}"
    columns = ", ".join(table.columns)
    if kind == "Upsert":
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in table.columns if c not in table.key)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    else:
        action = "DO NOTHING"
    return (
        f"INSERT INTO {schema}.{table.name} ({columns}) SELECT {columns} FROM {rows}"
        f" ON CONFLICT ({', '.join(table.key)}) {action}"
    )
