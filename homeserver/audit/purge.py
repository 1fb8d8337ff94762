"""Purging the original content of redacted events, keeping the log verifiable.

A redaction hides an event's content from everyone; the log still holds it.
`purge_redacted` removes it for good once the redaction is old enough:

- the logged event keeps every key but `content`, which becomes its redacted
  form (what Matrix keeps on redaction: the membership of a member event, the
  power levels of a power-level event, nothing of a message). Its signature and
  event ID cover exactly that form, so they still verify; its content hash no
  longer matches, and `audit verify` accepts that only for an event whose
  content is its redacted form and that the log shows redacted.
- the database's append-only trigger lets this one UPDATE through and records
  it in `purged_events` (migrations/0006_audit.sql); any other change is refused.
- projection rows the event wrote from the content it loses (a reaction's key
  and target in event_relations, for instance) become what the reducers make
  of the purged event, so `audit replay` of the purged log still matches.
  Rows a later event has rewritten are left alone: that event decides them.

Each batch takes the append lock, so no append interleaves with a purge.
Processes running meanwhile may still hold purged content in memory (the
recent-events tail, cached room state) until it ages out or they restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events.canonical import decode, encode
from homeserver.events.model import Event
from homeserver.events.redaction import redact_content
from homeserver.events.room_versions import LEGACY, room_version
from homeserver.projections import project
from homeserver.projections.changes import Change, Delete, key_of
from homeserver.store import audit as audit_store
from homeserver.store import events as event_store
from homeserver.store.projections import apply_changes, compact


@dataclass
class PurgeResult:
    redacted_before_ms: int
    events: int = 0
    rows_rewritten: int = 0

    def summary(self) -> str:
        return (
            f"purged the content of {self.events} redacted events (redacted before"
            f" {self.redacted_before_ms}); {self.rows_rewritten} projection rows rewritten"
        )


def _refold(before: list[Change], after: list[Change]) -> list[tuple[Change, Change]]:
    """(what the original event wrote, what the purged event writes instead) where they differ."""
    replaced = {(c.table.name, key_of(c)): c for c in compact(after)}
    differing: list[tuple[Change, Change]] = []
    for change in compact(before):
        if isinstance(change, Delete):
            continue
        instead = replaced.get((change.table.name, key_of(change)))
        if instead == change:
            continue
        key = dict(zip(change.table.key, key_of(change), strict=True))
        differing.append((change, instead if instead is not None else Delete(change.table, key)))
    return differing


async def purge_redacted(
    conn: asyncpg.Connection,
    redacted_before_ms: int,
    batch: int = 200,
    progress: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Purge every event redacted before `redacted_before_ms` (ms since the epoch)."""
    result = PurgeResult(redacted_before_ms)
    while True:
        async with conn.transaction():
            await event_store.lock_for_append(conn)
            candidates = await audit_store.purge_candidates(conn, redacted_before_ms, batch)
            fixes: list[Change] = []
            for position, event_id, raw, version in candidates:
                original = decode(raw)
                redacted = redact_content(
                    original["type"],
                    original.get("content", {}),
                    room_version(version) or LEGACY,
                )
                purged = {**original, "content": redacted}
                await audit_store.replace_with_redacted_form(
                    conn, position, encode(purged).decode()
                )
                before = project(Event.from_pdu(event_id, original, position))
                after = project(Event.from_pdu(event_id, purged, position))
                for written, instead in _refold(before, after):
                    row: Any = written.row  # type: ignore[union-attr]
                    live = await audit_store.projection_row(conn, written.table, key_of(written))
                    if live == {column: row[column] for column in written.table.columns}:
                        fixes.append(instead)
            await apply_changes(conn, fixes)
        result.events += len(candidates)
        result.rows_rewritten += len(fixes)
        if progress is not None and candidates:
            progress(result.events)
        if len(candidates) < batch:
            return result


async def purge_redacted_older_than(pool: asyncpg.Pool, older_than_ms: int) -> PurgeResult:
    """Purge every event whose redaction is older than `older_than_ms` (0: every one)."""
    async with pool.acquire() as conn:
        return await purge_redacted(conn, int(time.time() * 1000) - older_than_ms)
