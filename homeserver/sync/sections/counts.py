"""Each joined room shown: its `unread_notifications`, and its `summary` when its members
changed (the spec requires the counts then), for syncs built either way.

Counted once the rooms shown are settled: a receipt of one's own, say, shows the
room with its count back at 0. A window whose messages the source knows (the
in-memory tail) moves on every count this device's stream kept, its room shown
or not, and only counts never kept are read (sync/unread.py)."""

from __future__ import annotations

import asyncpg

from homeserver.store import sync as sync_store
from homeserver.store.sync import Summary
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.response import room_summary, unread_notifications
from homeserver.sync.unread import COUNTED_TYPES, DeviceCounts, UnreadCounts, moved_on, shown_counts


class RoomCounts:
    def __init__(self, pool: asyncpg.Pool, kept: UnreadCounts) -> None:
        self._pool = pool
        self._kept = kept

    async def __call__(self, sync: SyncAssembly) -> None:
        request, rooms = sync.request, sync.join
        user_id, device_id, ignored = request.user_id, request.device_id, request.options.ignored
        kept: DeviceCounts | None = None
        moved: dict[str, int] = {}
        tallies = sync.source.tallies
        if tallies is not None and request.after is not None:
            kept = self._kept.continuing(user_id, device_id, sync.generation, request.after)
            if kept is not None:
                moved = moved_on(kept, user_id, tallies, ignored)
        unread, missing = shown_counts(kept, moved, rooms)
        changed = [room_id for room_id in rooms if room_id in sync.members_changed]
        summaries: dict[str, Summary] = {}
        if missing or changed:
            async with self._pool.acquire() as conn:
                read = await sync_store.unread_counts(
                    conn, user_id, missing, sync.upper, COUNTED_TYPES, ignored
                )
                summaries = await sync_store.summaries(conn, changed, user_id)
            unread.update(read)
            moved.update(read)
        self._kept.keep(user_id, device_id, sync.generation, sync.upper, moved, merge=kept)
        for room_id, room in rooms.items():
            room["unread_notifications"] = unread_notifications(unread[room_id])
            if room_id in summaries:
                room["summary"] = room_summary(summaries[room_id])
