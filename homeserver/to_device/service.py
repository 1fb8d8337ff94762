"""Send-to-device messaging: queue per device, delivered by sync, deleted once acknowledged.

Not in the log (see migrations/0004_read_path.sql): a message is a delivery,
not a fact anyone needs to replay. A send is idempotent per (sender, sender's
device, transaction ID, event type of the path): the transaction ID is recorded
in the same transaction as the messages, so a retried request queues nothing
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from homeserver.batching import Batched
from homeserver.events.canonical import encode
from homeserver.events.model import TxnKey
from homeserver.store import to_device as inbox_store
from homeserver.sync.notifier import Change, Notifier

JsonDict = dict[str, Any]
ALL_DEVICES = "*"
# The spec recommends at most 100 to-device messages per sync response.
DEFAULT_BATCH = 100


class ToDeviceService:
    def __init__(self, pool: asyncpg.Pool, notifier: Notifier) -> None:
        self._pool = pool
        self._notifier = notifier
        self._reads: Batched[tuple[str, str, int, int], list[inbox_store.InboxMessage]] = Batched(
            self._read_inboxes
        )
        self._deletes: Batched[tuple[str, str, int], None] = Batched(self._delete_received)
        # Per device: (user's change generation, `after`) at which the inbox was
        # found empty, and the position last acknowledged. Every send to a user
        # names them in a change, which moves the generation on.
        self._empty_at: dict[tuple[str, str], tuple[int, int]] = {}
        self._acknowledged: dict[tuple[str, str], int] = {}

    async def send(
        self, txn: TxnKey, event_type: str, messages: Mapping[str, Mapping[str, JsonDict]]
    ) -> None:
        """PUT /sendToDevice/{eventType}/{txnId}: `messages` maps user ID -> device ID
        (or "*" for all the user's devices) -> content. Users and devices this server
        does not know are skipped silently, as the spec has it. The sender is
        `txn`'s user."""
        sender = txn.user_id
        targets = list(messages)
        async with self._pool.acquire() as conn, conn.transaction():
            if not await inbox_store.claim_txn(conn, txn):
                return
            await inbox_store.lock_inboxes(conn, targets)
            known = await inbox_store.devices_of(conn, targets)
            queued: list[tuple[str, str, str]] = []
            for user_id, by_device in messages.items():
                devices = known.get(user_id, [])
                chosen: dict[str, JsonDict] = {}
                if ALL_DEVICES in by_device:
                    chosen = dict.fromkeys(devices, by_device[ALL_DEVICES])
                # A message addressed to a device by name wins over the wildcard's.
                chosen.update(
                    (device_id, content)
                    for device_id, content in by_device.items()
                    if device_id != ALL_DEVICES and device_id in devices
                )
                queued.extend(
                    (user_id, device_id, encode(content).decode())
                    for device_id, content in chosen.items()
                )
            await inbox_store.insert_messages(conn, sender, event_type, queued)
        woken = frozenset(user_id for user_id, _, _ in queued)
        if woken:
            self._notifier.notify(Change(self._notifier.position, frozenset(), woken))

    # What sync reads

    async def pending(
        self, user_id: str, device_id: str, after: int, limit: int = DEFAULT_BATCH
    ) -> tuple[list[JsonDict], int]:
        """Messages queued for the device after position `after`, oldest first, at most
        `limit`: the events ({type, sender, content}) and the position of the last one
        (`after` when there is none)."""
        key = (user_id, device_id)
        generation = self._notifier.generation(user_id)
        empty = self._empty_at.get(key)
        if empty is not None and empty[0] == generation and after >= empty[1]:
            return [], after
        found = await self._reads.ask((user_id, device_id, after, limit))
        if not found:
            self._empty_at[key] = (generation, after)
        events = [{"type": m.type, "sender": m.sender, "content": m.content} for m in found]
        return events, found[-1].position if found else after

    def known_empty(self, user_id: str, device_id: str, after: int) -> bool:
        """True when the device is known to have nothing queued after `after` and nothing
        up to it left to delete: `pending` and `acknowledge` would do nothing."""
        key = (user_id, device_id)
        empty = self._empty_at.get(key)
        return (
            empty is not None
            and empty[0] == self._notifier.generation(user_id)
            and after >= empty[1]
            and self._acknowledged.get(key, 0) >= after
        )

    async def acknowledge(self, user_id: str, device_id: str, up_to: int) -> None:
        """The device has received everything up to `up_to` (it synced with a later token)."""
        key = (user_id, device_id)
        if self._acknowledged.get(key, 0) >= up_to:
            return
        await self._deletes.ask((user_id, device_id, up_to))
        self._acknowledged[key] = up_to

    async def _read_inboxes(
        self, wanted: list[tuple[str, str, int, int]]
    ) -> list[list[inbox_store.InboxMessage]]:
        async with self._pool.acquire() as conn:
            return await inbox_store.pending_many(conn, wanted)

    async def _delete_received(self, acknowledged: list[tuple[str, str, int]]) -> list[None]:
        async with self._pool.acquire() as conn:
            await inbox_store.delete_up_to_many(conn, acknowledged)
        return [None] * len(acknowledged)
