"""The window of a sync read from PostgreSQL: initial and full-state syncs, and every
incremental one the in-memory tail cannot answer (sync/memory_window.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

import asyncpg

from homeserver.events.model import Event, JsonDict
from homeserver.events.room_versions import RoomVersion
from homeserver.push.counts import Window as HeldWindow
from homeserver.rooms.rendering import EventRenderer, StoredFacts
from homeserver.store import profiles as profile_store
from homeserver.store import rooms as room_store
from homeserver.store import sync as sync_store
from homeserver.sync.filled_timelines import filled_timelines
from homeserver.sync.recent import WindowSummary
from homeserver.sync.sources import AccountDataSource, ReceiptSource
from homeserver.sync.window import (
    AccountData,
    KnownMember,
    Memberships,
    MembersWanted,
    SyncRequest,
    Timeline,
    TimelineWindow,
)


@dataclass(slots=True)
class DatabaseWindow:
    pool: asyncpg.Pool
    renderer: EventRenderer
    request: SyncRequest
    upper: int
    receipt_source: ReceiptSource | None = None
    account_data_source: AccountDataSource | None = None
    name: ClassVar[str] = "database"
    held: ClassVar[HeldWindow | None] = None
    summary: ClassVar[WindowSummary | None] = None

    async def memberships(self) -> Memberships:
        request, upper, after = self.request, self.upper, self.request.after
        options = request.options
        async with self.pool.acquire() as conn:
            rooms = [
                m
                for m in await sync_store.memberships(conn, request.user_id)
                if options.allows_room(m.room_id) and m.stream_position <= upper
            ]
            joined = {m.room_id: m.stream_position for m in rooms if m.membership == "join"}
            whole = after is None or request.full_state
            fresh = [
                room for room, at in joined.items() if whole or (after is not None and at > after)
            ]
            if not whole and fresh:
                # A join event after a join only changed the member's profile: no new room.
                rejoined = await profile_store.joined_at(conn, request.user_id, fresh, after or 0)
                fresh = [room for room in fresh if room not in rejoined]
            left = [
                m
                for m in rooms
                if m.membership in ("leave", "ban")
                and (
                    (after is not None and m.stream_position > after)
                    or (after is None and options.include_leave)
                )
            ]
            left_fresh = [m.room_id for m in left]
            if not whole and left:
                # A room left that the user was in at the window's start shows only what
                # changed; one they joined (or were invited to) within it, all its state.
                was = await sync_store.memberships_at(conn, request.user_id, left_fresh, after or 0)
                left_fresh = [room_id for room_id in left_fresh if was.get(room_id) != "join"]
        invited = [
            m
            for m in rooms
            if m.membership == "invite" and (after is None or m.stream_position > after)
        ]
        peeked = frozenset(
            room for room in request.peek if room not in joined and options.allows_room(room)
        )
        return Memberships(joined, frozenset(fresh), invited, left, frozenset(left_fresh), peeked)

    async def new_events(self, room_ids: Collection[str], limit: int) -> dict[str, Timeline]:
        after = self.request.after
        if not room_ids or after is None or after >= self.upper:
            return {}
        async with self.pool.acquire() as conn:
            found = await sync_store.rooms_with_events(conn, list(room_ids), after, self.upper)
        active = [room_id for room_id in room_ids if room_id in found]
        return await self.timelines([TimelineWindow(r, after, self.upper) for r in active], limit)

    async def timelines(self, windows: Sequence[TimelineWindow], limit: int) -> dict[str, Timeline]:
        if not windows:
            return {}
        async with self.pool.acquire() as conn:
            return await filled_timelines(conn, self.request, windows, limit)

    async def current_state(self, room_ids: Sequence[str]) -> dict[str, list[Event]]:
        if not room_ids:
            return {}
        async with self.pool.acquire() as conn:
            return await sync_store.current_state(conn, room_ids)

    async def state_changes(self, gaps: Sequence[tuple[str, int, int]]) -> dict[str, list[Event]]:
        if not gaps:
            return {}
        async with self.pool.acquire() as conn:
            return await sync_store.state_changes(conn, gaps)

    async def state_at(self, rooms: Sequence[tuple[str, int]]) -> dict[str, list[Event]]:
        if not rooms:
            return {}
        async with self.pool.acquire() as conn:
            return {
                room_id: await room_store.state_events_at(conn, room_id, position)
                for room_id, position in rooms
            }

    async def members_at(
        self, wanted: Sequence[MembersWanted], known: KnownMember
    ) -> dict[str, list[Event]]:
        if not wanted:
            return {}
        async with self.pool.acquire() as conn:
            return await sync_store.member_events_at(
                conn, [(w.room_id, user, w.position) for w in wanted for user in w.user_ids]
            )

    async def receipts(self, room_ids: Collection[str]) -> dict[str, JsonDict]:
        if self.receipt_source is None or not room_ids:
            return {}
        return await self.receipt_source.receipts_for_sync(
            self.request.user_id, list(room_ids), self.request.after, self.upper
        )

    async def account_data(self) -> AccountData:
        if self.account_data_source is None:
            return AccountData()
        user_id, after = self.request.user_id, self.request.after
        return AccountData(
            await self.account_data_source.global_account_data_for_sync(user_id, after, self.upper),
            await self.account_data_source.room_account_data_for_sync(user_id, after, self.upper),
        )

    async def facts(self, events: Sequence[Event], bundled: Collection[str]) -> StoredFacts:
        return await self.renderer.facts(
            events, self.request.viewer, include_room_id=False, bundled=bundled
        )

    async def bundles(self, events: Sequence[Event]) -> dict[str, JsonDict]:
        return await self.renderer.bundles(events, self.request.viewer, include_room_id=False)

    async def room_versions(self, room_ids: Collection[str]) -> dict[str, RoomVersion]:
        async with self.pool.acquire() as conn:
            return await self.renderer.room_versions(conn, room_ids)
