"""The to-device inbox: a delivery queue per device, not in the log."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.events.canonical import decode
from homeserver.events.model import TxnKey
from homeserver.store.unnest import columns

# The first half of the advisory lock key every to-device write takes per target user.
INBOX_LOCK = 7_240_001


@dataclass(frozen=True, slots=True)
class InboxMessage:
    position: int
    sender: str
    type: str
    content: dict[str, Any]


# Rows stored before transaction IDs were scoped to their path have this scope:
# their event type is not known, so they still answer a retry on any path.
_LEGACY_SCOPE = ""


async def claim_txn(conn: asyncpg.Connection, txn: TxnKey) -> bool:
    """Record a sendToDevice transaction ID; False when this device already used it
    on the same path (or before the upgrade that scoped IDs to paths)."""
    inserted = await conn.fetchval(
        "INSERT INTO device_inbox_txns (user_id, device_id, txn_id, scope)"
        " SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM device_inbox_txns"
        "  WHERE user_id = $1 AND device_id = $2 AND txn_id = $3 AND scope = $5)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        txn.user_id,
        txn.device_id,
        txn.txn_id,
        txn.scope,
        _LEGACY_SCOPE,
    )
    return inserted is not None


def _lock_key(user_id: str) -> int:
    value = zlib.crc32(user_id.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


async def lock_inboxes(conn: asyncpg.Connection, user_ids: Iterable[str]) -> None:
    """Lock the target users' inboxes until commit.

    Positions come from one sequence: two writers to the same device could take
    10 and 11, commit 11 first, and a sync delivering 11 would acknowledge (and
    so skip) 10 forever. Holding a per-user lock from before the position is
    taken until commit makes each device's positions visible in order. Locks are
    taken in key order so two writers never deadlock.
    """
    keys = sorted({_lock_key(user_id) for user_id in user_ids})
    if keys:
        await conn.executemany(
            "SELECT pg_advisory_xact_lock($1, $2)", [(INBOX_LOCK, key) for key in keys]
        )


async def devices_of(conn: asyncpg.Connection, user_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT user_id, device_id FROM devices WHERE user_id = ANY($1::text[])"
        " ORDER BY user_id, device_id",
        list(user_ids),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["user_id"], []).append(row["device_id"])
    return found


async def insert_messages(
    conn: asyncpg.Connection, sender: str, event_type: str, messages: Sequence[tuple[str, str, str]]
) -> None:
    """Queue (user_id, device_id, canonical JSON content) messages, in the order given."""
    await conn.executemany(
        "INSERT INTO device_inbox (user_id, device_id, sender, type, content)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(user_id, device_id, sender, event_type, body) for user_id, device_id, body in messages],
    )


async def pending(
    conn: asyncpg.Connection, user_id: str, device_id: str, after: int, limit: int
) -> list[InboxMessage]:
    rows = await conn.fetch(
        "SELECT position, sender, type, content FROM device_inbox"
        " WHERE user_id = $1 AND device_id = $2 AND position > $3 ORDER BY position LIMIT $4",
        user_id,
        device_id,
        after,
        limit,
    )
    return [InboxMessage(r["position"], r["sender"], r["type"], decode(r["content"])) for r in rows]


async def delete_up_to(conn: asyncpg.Connection, user_id: str, device_id: str, up_to: int) -> None:
    await conn.execute(
        "DELETE FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND position <= $3",
        user_id,
        device_id,
        up_to,
    )


async def pending_many(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, int, int]]
) -> list[list[InboxMessage]]:
    """`pending` for many (user ID, device ID, after, limit) at once: one query, the
    messages of each in the order asked."""
    rows = await conn.fetch(
        "SELECT w.n, m.position, m.sender, m.type, m.content"
        " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[])"
        "   WITH ORDINALITY AS w(user_id, device_id, after, lim, n)"
        " CROSS JOIN LATERAL (SELECT d.position, d.sender, d.type, d.content"
        "   FROM device_inbox d WHERE d.user_id = w.user_id AND d.device_id = w.device_id"
        "   AND d.position > w.after ORDER BY d.position LIMIT w.lim) m"
        " ORDER BY w.n, m.position",
        *columns(wanted, 4),
    )
    found: list[list[InboxMessage]] = [[] for _ in wanted]
    for r in rows:
        found[r["n"] - 1].append(
            InboxMessage(r["position"], r["sender"], r["type"], decode(r["content"]))
        )
    return found


async def delete_up_to_many(
    conn: asyncpg.Connection, acknowledged: Sequence[tuple[str, str, int]]
) -> None:
    """`delete_up_to` for many (user ID, device ID, up to) at once, in one statement."""
    await conn.execute(
        "DELETE FROM device_inbox d USING unnest($1::text[], $2::text[], $3::bigint[])"
        "   AS w(user_id, device_id, up_to)"
        " WHERE d.user_id = w.user_id AND d.device_id = w.device_id AND d.position <= w.up_to",
        *columns(acknowledged, 3),
    )
