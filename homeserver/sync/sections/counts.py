"""Each joined room shown: its `unread_notifications` (and `unread_thread_notifications`
when the filter asks), and its `summary` when its members changed (the spec requires
the counts then), for syncs built either way.

Counted once the rooms shown are settled: a receipt of one's own, say, shows the
room with its count back at 0. A window whose events the source holds (the
in-memory tail) moves on every count this device's stream kept by what those
events add (push/counts.py), its room shown or not; a sync ending at the position
this device was already served at (another of its connections, woken by the same
change) shows the counts kept there; only counts never kept are read
(sync/unread.py)."""

from __future__ import annotations

import asyncpg

from homeserver.events import types
from homeserver.push.counts import NotificationCounter, RoomCounts
from homeserver.push.counts import Window as HeldWindow
from homeserver.store import sync as sync_store
from homeserver.store.sync import Summary
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.lazy_members import LazyMembers
from homeserver.sync.options import uncounted
from homeserver.sync.response import add_unread_counts, room_summary
from homeserver.sync.unread import UnreadCounts, moved_on, shown_counts
from homeserver.sync.window import MembersWanted


class CountsAndSummaries:
    def __init__(
        self, pool: asyncpg.Pool, counter: NotificationCounter, lazy_members: LazyMembers
    ) -> None:
        self._pool = pool
        self._counter = counter
        self._kept = UnreadCounts()
        self._lazy = lazy_members
        # Rooms whose counts a sync showed, by where they came from: kept or moved on
        # in memory, or read from the database.
        self.counted = {"memory": 0, "database": 0}

    async def __call__(self, sync: SyncAssembly) -> None:
        request, rooms, generation, upper = sync.request, sync.join, sync.generation, sync.upper
        user_id, device_id, options = request.user_id, request.device_id, request.options
        moved: dict[str, RoomCounts] = {}
        held = sync.source.held
        # Counts this device was already served at this very position: another of its
        # connections woken by the same change got here first (a client with several
        # tabs on one login, a retried request), and counts depend on the user and the
        # position only, not on where a window starts.
        kept = self._kept.at(user_id, device_id, generation, upper)
        if kept is None and held is not None and request.after is not None:
            continued = self._kept.at(user_id, device_id, generation, request.after)
            if continued is not None:
                kept = continued.snapshot()
                window = HeldWindow(
                    {r: events for r, events in held.events_by_room.items() if r in kept.by_room},
                    held.state_changed,
                )
                added = await self._counter.window_counts(
                    user_id, generation, window, uncounted(options), upper
                )
                moved = moved_on(kept, added)
        unread, missing = shown_counts(kept, moved, rooms)
        self.counted["memory"] += len(unread)
        self.counted["database"] += len(missing)
        if missing:
            joined = sync.joined
            read = await self._counter.counts(
                user_id,
                generation,
                {room_id: joined.get(room_id, 0) for room_id in missing},
                upper,
                uncounted(options),
            )
            unread.update(read)
            moved.update(read)
        changed = [room_id for room_id in rooms if room_id in sync.summary_changed]
        summaries: dict[str, Summary] = {}
        if changed:
            async with self._pool.acquire() as conn:
                summaries = await sync_store.summaries(conn, changed, user_id)
        self._kept.keep(user_id, device_id, generation, upper, moved, merge=kept)
        for room_id, room in rooms.items():
            add_unread_counts(room, unread[room_id], options.unread_thread_notifications)
            if room_id in summaries:
                room["summary"] = room_summary(summaries[room_id])
        if options.lazy_load_members and summaries:
            await self._hero_members(sync, summaries)

    async def _hero_members(self, sync: SyncAssembly, summaries: dict[str, Summary]) -> None:
        """With lazy loading, "the membership events for the heroes MUST be included in
        the state, unless they are redundant" (spec, `m.heroes`)."""
        device = sync.request.viewer
        lazy = self._lazy
        redundant = sync.request.options.include_redundant_members
        wanted: list[MembersWanted] = []
        for room_id, summary in summaries.items():
            room = sync.join[room_id]
            shown = {
                event.state_key
                for event in (*room["state"]["events"], *room["timeline"]["events"])
                if event.type == types.MEMBER
            }
            heroes = [hero for hero in summary.heroes or () if hero not in shown]
            if heroes:
                wanted.append(MembersWanted(room_id, sync.upper, heroes))
        found = await lazy.to_send(sync.source, device, wanted, redundant=redundant)
        for room_id, events in found.items():
            if events:
                sync.add_state(room_id, events)
                lazy.record(device, events)
