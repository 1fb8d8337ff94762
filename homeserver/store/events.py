"""The event log table: append rows, read events back."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.events.canonical import decode, encode
from homeserver.events.model import Event, TxnKey

# Taken by every append transaction before it reads the head of the log: two
# batches that took positions 10 and 11 could otherwise commit 11 first, and a
# reader at 11 would never see 10. Holding it to commit makes positions visible
# strictly in order, across processes.
APPEND_LOCK = 7_240_000


async def lock_for_append(conn: asyncpg.Connection) -> int:
    """Take the append lock; returns the last stream position in the log."""
    # Two statements, not one: under READ COMMITTED a statement's snapshot is
    # taken before it waits for the lock, and would miss the batch before it.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
    position = await conn.fetchval("SELECT max(stream_position) FROM events")
    return int(position or 0)


async def insert_events(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    await conn.copy_records_to_table(
        "events",
        records=[
            (
                event.stream_position,
                event.event_id,
                event.room_id,
                event.type,
                event.state_key,
                event.sender,
                event.origin_server_ts,
                event.depth,
                (event.logged or encode(event.pdu)).decode(),
            )
            for event in events
        ],
        columns=[
            "stream_position",
            "event_id",
            "room_id",
            "type",
            "state_key",
            "sender",
            "origin_server_ts",
            "depth",
            "json",
        ],
    )


async def insert_txn_ids(conn: asyncpg.Connection, entries: Sequence[tuple[TxnKey, str]]) -> None:
    await conn.executemany(
        "INSERT INTO event_txn_ids (user_id, device_id, txn_id, event_id) VALUES ($1, $2, $3, $4)",
        [(key.user_id, key.device_id, key.txn_id, event_id) for key, event_id in entries],
    )


async def events_for_txns(conn: asyncpg.Connection, keys: Sequence[TxnKey]) -> dict[TxnKey, str]:
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT t.user_id, t.device_id, t.txn_id, t.event_id FROM event_txn_ids t"
        " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(user_id, device_id, txn_id)"
        " USING (user_id, device_id, txn_id)",
        [key.user_id for key in keys],
        [key.device_id for key in keys],
        [key.txn_id for key in keys],
    )
    return {TxnKey(r["user_id"], r["device_id"], r["txn_id"]): r["event_id"] for r in rows}


def _event_from_row(row: asyncpg.Record) -> Event:
    return Event.from_pdu(row["event_id"], decode(row["json"]), row["stream_position"])


async def event_by_id(conn: asyncpg.Connection, event_id: str) -> Event | None:
    row = await conn.fetchrow(
        "SELECT event_id, stream_position, json FROM events WHERE event_id = $1", event_id
    )
    return _event_from_row(row) if row is not None else None


async def events_by_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[str, Event]:
    rows = await conn.fetch(
        "SELECT event_id, stream_position, json FROM events WHERE event_id = ANY($1::text[])",
        list(event_ids),
    )
    return {row["event_id"]: _event_from_row(row) for row in rows}


async def redactions_of(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[str, Event]:
    """The redaction event of each redacted event among `event_ids`."""
    rows = await conn.fetch(
        "SELECT r.redacts, e.event_id, e.stream_position, e.json FROM redactions r"
        " JOIN events e ON e.event_id = r.redaction_id WHERE r.redacts = ANY($1::text[])",
        list(event_ids),
    )
    return {row["redacts"]: _event_from_row(row) for row in rows}


async def last_position(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(stream_position), 0) FROM events"))


async def live_annotations(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which (sender, target, key) annotations exist and are not redacted."""
    if not wanted:
        return set()
    rows = await conn.fetch(
        "SELECT r.sender, r.relates_to, r.aggregation_key FROM event_relations r"
        " JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(sender, relates_to, key)"
        " ON r.sender = w.sender AND r.relates_to = w.relates_to AND r.aggregation_key = w.key"
        " WHERE r.rel_type = 'm.annotation'"
        " AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = r.event_id)",
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        [w[2] for w in wanted],
    )
    return {(r["sender"], r["relates_to"], r["aggregation_key"]) for r in rows}
