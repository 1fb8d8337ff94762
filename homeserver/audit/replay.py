"""Replaying the log: rebuild every projection from position 0 and compare with the live tables.

The replay runs the very reducers the live server runs (`projections.project`)
and applies their changes with the very function the appender uses
(`store.projections.apply_changes`), into a scratch schema holding an empty
copy of every table in `projections.changes.ALL_TABLES`. Identical tables
prove the projections honest: nothing wrote them but the log.

Changes are applied a batch of events at a time (one `executemany` per table
and kind of change, after `compact` keeps one change per row), as the
appender does: one round trip per change would cap the replay at a few
thousand events per second.

Everything happens in one REPEATABLE READ transaction, so a server appending
meanwhile does not make the live tables differ from the log the replay read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.model import Event
from homeserver.projections import project
from homeserver.projections.changes import ALL_TABLES, Change, Table
from homeserver.store import audit as audit_store
from homeserver.store import events as event_store
from homeserver.store.projections import apply_changes

DEFAULT_SCHEMA = "audit_replay"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ReplayError(Exception):
    """The replay could not run (bad schema name, schema already there)."""


@dataclass(frozen=True)
class TableDifference:
    table: str
    live_rows: int
    replayed_rows: int
    only_live: list[dict[str, Any]]  # the first rows the replay did not produce
    only_replayed: list[dict[str, Any]]  # the first rows the live table lacks

    def describe(self) -> str:
        lines = [f"{self.table}: {self.live_rows} live rows, {self.replayed_rows} replayed"]
        lines += [f"  only live:     {row}" for row in self.only_live]
        lines += [f"  only replayed: {row}" for row in self.only_replayed]
        return "\n".join(lines)


@dataclass
class ReplayResult:
    events: int = 0
    tables: int = 0
    rows: int = 0
    schema: str = DEFAULT_SCHEMA
    kept: bool = False
    differences: list[TableDifference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """One line: identical, or how many tables differ (`describe` each difference)."""
        kept = f"; kept in schema {self.schema}" if self.kept else ""
        if not self.identical:
            return (
                f"DIFFERENT: {len(self.differences)} of {self.tables} projection tables differ"
                f" from a replay of {self.events} events{kept}"
            )
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return (
            f"ok: {self.tables} projection tables ({self.rows} rows) identical to a replay of"
            f" {self.events} events in {self.seconds:.2f} s ({rate:,.0f} events/s){kept}"
        )


async def replay_log(
    pool: asyncpg.Pool, schema: str = DEFAULT_SCHEMA, keep: bool = False
) -> ReplayResult:
    """`replay` on a connection of `pool`, timed."""
    started = time.monotonic()
    async with pool.acquire() as conn:
        result = await replay(conn, schema, keep)
    result.seconds = time.monotonic() - started
    return result


async def replay(
    conn: asyncpg.Connection,
    schema: str = DEFAULT_SCHEMA,
    keep: bool = False,
    tables: Sequence[Table] = ALL_TABLES,
    batch: int = 5_000,
    shown_rows: int = 5,
) -> ReplayResult:
    """Rebuild `tables` from the log into `schema` and compare; drop the schema unless `keep`."""
    if not _IDENTIFIER.match(schema) or schema in ("public", "pg_catalog", "information_schema"):
        raise ReplayError(f"{schema!r} is not a usable schema name (lower case, digits, _)")
    result = ReplayResult(schema=schema, kept=keep, tables=len(tables))
    async with conn.transaction(isolation="repeatable_read"):
        if await audit_store.schema_exists(conn, schema):
            raise ReplayError(
                f"schema {schema} already exists (a replay kept with --keep?);"
                f" drop it (DROP SCHEMA {schema} CASCADE) or name another with --schema"
            )
        await audit_store.create_scratch_schema(conn, schema, tables)
        until = await event_store.last_position(conn)
        async for rows in audit_store.log_batches(conn, 0, until=until, batch=batch):
            changes: list[Change] = []
            for position, event_id, raw, _ in rows:
                changes.extend(project(Event.from_pdu(event_id, decode(raw), position)))
            await apply_changes(conn, changes, schema=schema)
            result.events += len(rows)
        for table in tables:
            only_live, only_replayed = await audit_store.differing_rows(
                conn, table, schema, shown_rows
            )
            replayed = await audit_store.row_count(conn, table, schema)
            result.rows += replayed
            if only_live or only_replayed:
                live = await audit_store.row_count(conn, table)
                result.differences.append(
                    TableDifference(table.name, live, replayed, only_live, only_replayed)
                )
        if not keep:
            await audit_store.drop_schema(conn, schema)
    return result
