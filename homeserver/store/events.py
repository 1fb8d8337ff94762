"""The event log table: append rows, read events back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from homeserver.events.canonical import decode, encode
from homeserver.events.model import Event, TxnKey
from homeserver.projections.changes import Change
from homeserver.projections.room_state import ChainHead
from homeserver.store.projections import changes_as_ctes, with_statements
from homeserver.store.unnest import columns

# Taken by every append transaction before it reads the head of the log: two
# batches that took positions 10 and 11 could otherwise commit 11 first, and a
# reader at 11 would never see 10. Holding it to commit makes positions visible
# strictly in order, across processes.
APPEND_LOCK = 7_240_000


async def lock_for_append(conn: asyncpg.Connection) -> int:
    """Take the append lock in the caller's transaction; returns the last stream
    position in the log."""
    # Two statements, not one: under READ COMMITTED a statement's snapshot is
    # taken before it waits for the lock, and would miss the batch before it.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
    position = await conn.fetchval("SELECT max(stream_position) FROM events")
    return int(position or 0)


_LOCK = f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"
_BEGIN_LOCKED = f"BEGIN; {_LOCK}"
# One row when the lock was free and is now ours, none when another process holds it.
_COMMIT_THEN_TRY_LOCK = f"COMMIT; BEGIN; SELECT 1 WHERE pg_try_advisory_xact_lock({APPEND_LOCK})"


class AppendSession:
    """The appender's own connection, and on it one transaction per batch that
    holds the append lock.

    Opening a batch's transaction (BEGIN and the lock, one simple query) costs a
    round trip, and on a busy server a round trip is a turn of an event loop
    that is also waking every long-poll the last batch concerns. So when the next
    batch is already waiting, a batch's COMMIT carries the next BEGIN and lock in
    the same query (`commit(then_lock=True)`). The lock is never held idle: only
    with work waiting.

    That lock is only *tried*: when another process (a worker, a replica) holds
    it, waiting for it in the COMMIT's query would keep this batch's senders, and
    the long-polls its events wake, waiting for the other process's batch too.
    Then the commit returns at once inside a fresh transaction, and the next
    batch waits for the lock in `begin` (PostgreSQL grants it in order of asking).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None
        self._begun = False  # a transaction is open for the next batch
        self._locked = False  # ... and holds the append lock

    async def begin(self) -> asyncpg.Connection:
        """The connection, in a transaction that holds the append lock."""
        try:
            if self._conn is None:
                self._conn = await self._pool.acquire()
            if not self._begun:
                await self._conn.execute(_BEGIN_LOCKED)
            elif not self._locked:
                await self._conn.execute(_LOCK)
        except BaseException as error:
            # PostgreSQL restarted: the pool detaches a connection it lost, and the
            # next batch must take a fresh one rather than fail on this one forever.
            await self.abort(error)
            raise
        self._begun = self._locked = False  # this batch has them now
        return self._conn

    async def commit(self, then_lock: bool) -> None:
        assert self._conn is not None
        if not then_lock:
            await self._conn.execute("COMMIT")
            return
        status = await self._conn.execute(_COMMIT_THEN_TRY_LOCK)
        self._begun = True
        self._locked = status == "SELECT 1"

    async def abort(self, error: BaseException) -> None:
        """After `error` in a batch: roll back, or drop a connection in an unknown state."""
        self._begun = self._locked = False
        conn = self._conn
        if conn is None:
            return
        try:
            if isinstance(error, asyncpg.PostgresError) and not conn.is_closed():
                await conn.execute("ROLLBACK")
                return
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass
        # Cancelled or broken mid-way: the connection's state is unknown (or it is
        # lost, and the pool has already taken it back: a detached proxy raises).
        self._conn = None
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        with contextlib.suppress(asyncpg.InterfaceError):
            await self._pool.release(conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._begun:
                conn.terminate()
            await self._pool.release(conn)
        self._begun = self._locked = False


@dataclass(frozen=True)
class AppendHeads:
    """What a batch reads under the append lock before it decides."""

    position: int  # the last stream position in the log
    heads: dict[str, ChainHead]  # of the batch's chains that exist
    txns: dict[TxnKey, str]  # transaction IDs already used, and their event IDs


# Three reads as one statement (each part typed alike so UNION ALL can stack them).
_READ_HEADS = (
    "SELECT 0 AS part, NULL::text AS chain, NULL::text AS event_id, NULL::text AS device_id,"
    " NULL::text AS txn_id, NULL::text AS scope, NULL::bigint AS depth,"
    " (SELECT max(stream_position) FROM events) AS position"
    " UNION ALL"
    " SELECT 1, room_id, event_id, NULL, NULL, NULL, depth, stream_position FROM chain_heads"
    " WHERE room_id = ANY($1::text[])"
    " UNION ALL"
    " SELECT 2, t.user_id, t.event_id, t.device_id, t.txn_id, t.scope, NULL, NULL"
    " FROM event_txn_ids t"
    " JOIN unnest($2::text[], $3::text[], $4::text[], $5::text[])"
    " AS k(user_id, device_id, txn_id, scope) USING (user_id, device_id, txn_id, scope)"
)


async def read_append_heads(
    conn: asyncpg.Connection, room_ids: Sequence[str], txn_keys: Sequence[TxnKey]
) -> AppendHeads:
    """The log position, the chains' heads and the used transaction IDs, in one
    round trip; call it under the append lock."""
    rows = await conn.fetch(
        _READ_HEADS,
        list(room_ids),
        [key.user_id for key in txn_keys],
        [key.device_id for key in txn_keys],
        [key.txn_id for key in txn_keys],
        [key.scope for key in txn_keys],
    )
    position = 0
    heads: dict[str, ChainHead] = {}
    txns: dict[TxnKey, str] = {}
    for part, chain, event_id, device_id, txn_id, scope, depth, stream_position in rows:
        if part == 0:
            position = int(stream_position or 0)
        elif part == 1:
            heads[chain] = ChainHead(event_id, depth, stream_position)
        else:
            txns[TxnKey(chain, device_id, txn_id, scope)] = event_id
    return AppendHeads(position, heads, txns)


_EVENT_COLUMNS = (
    "stream_position, event_id, room_id, type, state_key, sender, origin_server_ts, depth, json"
)


async def write_batch(
    conn: asyncpg.Connection,
    events: Sequence[Event],
    txns: Sequence[tuple[TxnKey, str]],
    changes: Iterable[Change],
) -> None:
    """Insert a batch's events, their transaction IDs and their projection
    changes as one statement (one round trip), in the caller's transaction."""
    params: list[str] = []
    parts = changes_as_ctes(changes, "public", params)
    if txns:
        params.append(
            orjson.dumps(
                [
                    {
                        "user_id": key.user_id,
                        "device_id": key.device_id,
                        "txn_id": key.txn_id,
                        "scope": key.scope,
                        "event_id": event_id,
                    }
                    for key, event_id in txns
                ]
            ).decode()
        )
        parts.append(
            "INSERT INTO event_txn_ids (user_id, device_id, txn_id, scope, event_id)"
            " SELECT user_id, device_id, txn_id, scope, event_id"
            f" FROM json_populate_recordset(NULL::event_txn_ids, ${len(params)}::json)"
        )
    params.append(
        orjson.dumps(
            [
                {
                    "stream_position": event.stream_position,
                    "event_id": event.event_id,
                    "room_id": event.room_id,
                    "type": event.type,
                    "state_key": event.state_key,
                    "sender": event.sender,
                    "origin_server_ts": event.origin_server_ts,
                    "depth": event.depth,
                    "json": (event.logged or encode(event.pdu)).decode(),
                }
                for event in events
            ]
        ).decode()
    )
    await conn.execute(
        with_statements(
            parts,
            f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS}"
            f" FROM json_populate_recordset(NULL::events, ${len(params)}::json)",
        ),
        *params,
    )


def event_from_row(row: asyncpg.Record) -> Event:
    """The event of a row with its `event_id`, `stream_position` and logged `json`."""
    return Event.from_pdu(row["event_id"], decode(row["json"]), row["stream_position"])


async def event_by_id(conn: asyncpg.Connection, event_id: str) -> Event | None:
    row = await conn.fetchrow(
        "SELECT event_id, stream_position, json FROM events WHERE event_id = $1", event_id
    )
    return event_from_row(row) if row is not None else None


async def events_by_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[str, Event]:
    rows = await conn.fetch(
        "SELECT event_id, stream_position, json FROM events WHERE event_id = ANY($1::text[])",
        list(event_ids),
    )
    return {row["event_id"]: event_from_row(row) for row in rows}


async def redactions_of(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[str, Event]:
    """The redaction event of each redacted event among `event_ids`."""
    rows = await conn.fetch(
        "SELECT r.redacts, e.event_id, e.stream_position, e.json FROM redactions r"
        " JOIN events e ON e.event_id = r.redaction_id WHERE r.redacts = ANY($1::text[])",
        list(event_ids),
    )
    return {row["redacts"]: event_from_row(row) for row in rows}


async def last_position(conn: asyncpg.Connection) -> int:
    """The last position in the log; appends commit in position order, so all before it exist."""
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
        *columns(wanted, 3),
    )
    return {(r["sender"], r["relates_to"], r["aggregation_key"]) for r in rows}
