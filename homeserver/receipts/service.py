"""Read receipts and the fully-read marker, and what sync reads of receipts.

Both are durable facts in the owner's account chain (`@user`): a receipt is a
`com.linkchat.receipt` state event keyed by (room, type, thread), the marker is
`m.fully_read` room account data (account_data/facts.py). The projections in
projections/accounts.py turn them into the `receipts` and `account_data`
tables that sync reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.account_data.facts import account_data_draft
from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft
from homeserver.log.appender import Appender
from homeserver.store import account_data as account_data_store
from homeserver.store import events as event_store
from homeserver.store import receipts as receipt_store
from homeserver.store import rooms as room_store

JsonDict = dict[str, Any]

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = frozenset({READ, READ_PRIVATE, FULLY_READ})
MAIN_TIMELINE = "main"
THREAD = "m.thread"
# The spec recommends following at most 3 relations to find an event's thread.
MAX_RELATION_HOPS = 3


@dataclass(frozen=True, slots=True)
class _Marker:
    """One receipt or marker to move: its kind, thread ("" when unthreaded) and event."""

    receipt_type: str
    thread_id: str
    event_id: str


def receipt_key(room_id: str, receipt_type: str, thread_id: str) -> str:
    """The state key of a receipt in its owner's chain: one per (room, type, thread)."""
    return json.dumps([room_id, receipt_type, thread_id])


@dataclass(eq=False)
class ReceiptService:
    pool: asyncpg.Pool
    appender: Appender

    # Writing

    async def send_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}."""
        if receipt_type not in RECEIPT_TYPES:
            raise invalid_param(f"Receipt type must be one of {', '.join(sorted(RECEIPT_TYPES))}.")
        if thread_id is not None and receipt_type == FULLY_READ:
            raise invalid_param(f"thread_id is not compatible with {FULLY_READ} receipts.")
        await self._move(
            user_id, room_id, [_Marker(receipt_type, thread_id or "", event_id)], thread_id
        )

    async def set_read_markers(
        self,
        user_id: str,
        room_id: str,
        fully_read: str | None,
        read: str | None,
        read_private: str | None,
    ) -> None:
        """POST /rooms/{roomId}/read_markers: any of the three, all or none applied."""
        wanted = [
            _Marker(kind, "", event_id)
            for kind, event_id in (
                (FULLY_READ, fully_read),
                (READ, read),
                (READ_PRIVATE, read_private),
            )
            if event_id is not None
        ]
        await self._move(user_id, room_id, wanted, None)

    async def _move(
        self, user_id: str, room_id: str, markers: list[_Marker], thread_id: str | None
    ) -> None:
        async with self.pool.acquire() as conn:
            current = await room_store.membership(conn, room_id, user_id)
            if current is None or current.membership != "join":
                raise forbidden("You are not joined to this room.")
            drafts: list[Draft] = []
            for marker in markers:
                event = await event_store.event_by_id(conn, marker.event_id)
                if event is None or event.room_id != room_id:
                    raise not_found(f"Event {marker.event_id} not found in this room.")
                if thread_id is not None and not await _in_thread(conn, marker.event_id, thread_id):
                    raise invalid_param(
                        f"Event {marker.event_id} is not related to thread {thread_id}."
                    )
                # A marker only moves forward, as in Synapse: a receipt for an event at or
                # before the current one is accepted and ignored (clients race each other).
                # Checked before the append, not under its lock: two of one user's own
                # requests racing can still land out of order, which costs nothing lasting.
                if (at := await _current_position(conn, user_id, room_id, marker)) is not None:
                    if at >= event.stream_position:
                        continue
                drafts.append(_draft(user_id, room_id, marker))
        if drafts:
            await self.appender.append_group(drafts)

    # Reading, for sync

    async def receipts_for_sync(
        self, user_id: str, room_ids: Sequence[str], since: int | None, until: int
    ) -> dict[str, JsonDict]:
        """Per room, the content of an `m.receipt` event with the receipts written in
        (since, until] (all current ones when `since` is None). Private receipts are
        only ever shown to their owner."""
        if not room_ids:
            return {}
        async with self.pool.acquire() as conn:
            rows = await receipt_store.receipts_between(conn, room_ids, user_id, since, until)
        found: dict[str, JsonDict] = {}
        for row in rows:
            receipt: JsonDict = {"ts": row.ts}
            if row.thread_id:
                receipt["thread_id"] = row.thread_id
            by_type = found.setdefault(row.room_id, {}).setdefault(row.event_id, {})
            by_type.setdefault(row.receipt_type, {})[row.user_id] = receipt
        return found


def _draft(user_id: str, room_id: str, marker: _Marker) -> Draft:
    if marker.receipt_type == FULLY_READ:
        # The spec keeps the fully-read marker as room account data.
        return account_data_draft(user_id, room_id, FULLY_READ, {"event_id": marker.event_id})
    return Draft(
        user_id,
        user_id,
        types.RECEIPT,
        {
            "room_id": room_id,
            "receipt_type": marker.receipt_type,
            "thread_id": marker.thread_id,
            "event_id": marker.event_id,
            "ts": int(time.time() * 1000),
        },
        state_key=receipt_key(room_id, marker.receipt_type, marker.thread_id),
    )


async def _current_position(
    conn: asyncpg.Connection, user_id: str, room_id: str, marker: _Marker
) -> int | None:
    """Log position of the event the user's current marker of this kind points at."""
    if marker.receipt_type != FULLY_READ:
        return await receipt_store.receipt_event_position(
            conn, room_id, user_id, marker.receipt_type, marker.thread_id
        )
    data = await account_data_store.content(conn, user_id, room_id, FULLY_READ)
    current = data.get("event_id") if data is not None else None
    if not isinstance(current, str):
        return None
    event = await event_store.event_by_id(conn, current)
    return event.stream_position if event is not None else None


async def _in_thread(conn: asyncpg.Connection, event_id: str, thread_id: str) -> bool:
    """Whether a receipt for `thread_id` may name `event_id` (the spec's threaded receipts).

    An event is in thread T when it (or, within a few hops along its relations, an
    event it relates to) has an m.thread relation to T; a thread's root and events
    relating to the root by other relations belong to T's receipts too, and to the
    main timeline. Everything else is in the main timeline.
    """
    current = event_id
    seen_root = current == thread_id
    for _ in range(MAX_RELATION_HOPS + 1):
        relation = await receipt_store.relation_of(conn, current)
        if relation is None:
            break
        target, rel_type = relation
        if rel_type == THREAD:
            return thread_id == target
        current = target
        seen_root = seen_root or current == thread_id
    return thread_id == MAIN_TIMELINE or seen_root
