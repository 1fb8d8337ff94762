"""GET /sync: what changed for one user and device since a token, waiting when nothing has.

The builder subscribes to the notifier before it reads, so a change committed
while it reads wakes it; it reads only up to the position the notifier has
seen, which is a prefix of the log (positions become visible in order).

One builder: the sections (sync/sections/) write the response through a window
source (sync/window.py), the in-memory tail of the log when it can answer the
sync (sync/memory_window.py), else the database (sync/database_window.py).
"""

from __future__ import annotations

import time

import asyncpg

from homeserver.account_data.ignore import ignored_users_many
from homeserver.push.counts import NotificationCounter
from homeserver.rooms.rendering import EventRenderer
from homeserver.rooms.shadow_bans import load_shadow_bans
from homeserver.store import events as event_store
from homeserver.store import sync as sync_store
from homeserver.sync.assembly import Section, SyncAssembly
from homeserver.sync.database_window import DatabaseWindow
from homeserver.sync.lazy_members import LazyMembers
from homeserver.sync.memory_window import MemoryWindows
from homeserver.sync.notifier import Notifier
from homeserver.sync.options import SyncOptions, hiding
from homeserver.sync.recent import RecentEvents
from homeserver.sync.response import SyncResult, room_has_content
from homeserver.sync.sections.account_data import write_account_data
from homeserver.sync.sections.counts import CountsAndSummaries
from homeserver.sync.sections.encryption import Encryption
from homeserver.sync.sections.ephemeral import Ephemeral
from homeserver.sync.sections.invites import write_invites
from homeserver.sync.sections.presence import Presence
from homeserver.sync.sections.rooms import Rooms
from homeserver.sync.sections.to_device import ToDevice
from homeserver.sync.sources import (
    AccountDataSource,
    DeviceListSource,
    OneTimeKeySource,
    PresenceSource,
    ReceiptSource,
    ToDeviceSource,
    TypingSource,
)
from homeserver.sync.tokens import SyncToken
from homeserver.sync.user_cache import UserCache
from homeserver.sync.window import SyncRequest, WindowSource


class SyncService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        renderer: EventRenderer,
        recent: RecentEvents,
        counter: NotificationCounter,
        *,
        receipts: ReceiptSource | None = None,
        account_data: AccountDataSource | None = None,
        typing: TypingSource | None = None,
        presence: PresenceSource | None = None,
        to_device: ToDeviceSource | None = None,
        device_lists: DeviceListSource | None = None,
        one_time_keys: OneTimeKeySource | None = None,
        from_memory: bool = True,
    ) -> None:
        """`from_memory=False` builds every sync from the database (tests run the sync
        tests both ways, so the two sources cannot drift apart)."""
        self._pool = pool
        self._notifier = notifier
        self._renderer = renderer
        self._recent = recent
        self._memory = MemoryWindows(recent) if from_memory else None
        self._receipts = receipts
        self._account_data = account_data
        self._typing = typing
        self._presence = presence
        self._to_device = to_device
        # The user's joined rooms (room -> join position), and whom they ignore.
        self._joined = UserCache(notifier, self._read_joined)
        self._ignored = UserCache(notifier, self._read_ignored)
        # Syncs answered by each window source.
        self.answered = {"memory": 0, "database": 0}
        # The members each device was sent under lazy loading (sync/lazy_members.py).
        lazy_members = LazyMembers()
        self._room_sections: list[Section] = [
            Rooms(lazy_members),
            write_invites,
            Ephemeral(typing),
            write_account_data,
        ]
        self._counts = CountsAndSummaries(pool, counter, lazy_members)
        self._sections: list[Section] = [
            self._counts,
            ToDevice(to_device),
            Presence(presence),
            Encryption(device_lists, one_time_keys),
        ]

    @property
    def unread_counts(self) -> dict[str, int]:
        """Rooms whose unread counts syncs showed, by source: memory or database."""
        return self._counts.counted

    def add_section(self, section: Section, *, decides_rooms: bool = False) -> None:
        """Write `section` into every sync from now on: with the room sections when what
        it writes into a joined room makes the room shown (`decides_rooms`), else once
        the joined rooms shown are settled."""
        (self._room_sections if decides_rooms else self._sections).append(section)

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            latest = await event_store.last_position(conn)
            # Read after the position: they cover it.
            shadow_bans = await load_shadow_bans(conn)
        self._notifier.position = max(self._notifier.position, latest)
        self._recent.start_at(self._notifier.position, shadow_bans)

    @property
    def releasing(self) -> bool:
        """The process is shutting down: long-polls answer at once with what they have."""
        return self._notifier.releasing

    def release(self) -> None:
        self._notifier.release_all()

    async def wait_for_changes(
        self,
        user_id: str,
        device_id: str,
        since: SyncToken | None,
        timeout_ms: int,
        options: SyncOptions,
        full_state: bool = False,
        peek: frozenset[str] = frozenset(),
    ) -> SyncResult:
        """Build the sync; when it is empty, wait for a change until `timeout_ms` runs out.
        `peek`: rooms read without being in them (SyncRequest.peek)."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        # Subscribe before reading: a change committed while we read wakes us.
        await self._notifier.settled()
        joined = await self._joined.get(user_id)
        waiter = self._notifier.subscribe(user_id, [*joined, *peek])
        try:
            if (
                since is not None
                and not full_state
                and timeout_ms > 0
                and await self._nothing_new(user_id, device_id, since, options)
            ):
                # The answer now would be empty: wait first, build once something moved.
                await waiter.wait(deadline - time.monotonic())
            while True:
                result = await self._build(
                    SyncRequest(user_id, device_id, since, options, full_state, peek), joined
                )
                remaining = deadline - time.monotonic()
                if (
                    result.has_changes
                    or since is None
                    or full_state
                    or remaining <= 0
                    or self._notifier.releasing
                ):
                    return result
                # A join since we subscribed wakes by user ID; follow the new room too.
                self._notifier.retarget(waiter, [*result.joined_rooms, *peek])
                if not await waiter.wait(remaining):
                    return result
                joined = await self._joined.get(user_id)
        finally:
            self._notifier.unsubscribe(waiter)

    async def current_token(self) -> SyncToken:
        """A token for "now" in every stream a sync reads (the v1 /events without `from`);
        to-device left at 0: those endpoints carry none."""
        typing = await self._typing.current_serial() if self._typing is not None else 0
        presence = self._presence.position if self._presence is not None else 0
        return SyncToken(self._notifier.position, typing, 0, presence)

    async def _nothing_new(
        self, user_id: str, device_id: str, since: SyncToken, options: SyncOptions
    ) -> bool:
        """True when no stream this sync reads has moved past `since`, as most long-polls
        find when they arrive: then building an answer only to find it empty is skipped."""
        if since.events != self._notifier.position:
            return False
        if self._typing is not None and await self._typing.current_serial() != since.typing:
            return False
        if (
            self._presence is not None
            and options.wants_presence
            and self._presence.position != since.presence
        ):
            return False
        return (
            self._to_device is None
            or not options.to_device
            or self._to_device.known_empty(user_id, device_id, since.to_device)
        )

    async def _read_joined(self, user_ids: list[str]) -> list[dict[str, int]]:
        async with self._pool.acquire() as conn:
            return await sync_store.joined_many(conn, user_ids)

    async def _read_ignored(self, user_ids: list[str]) -> list[frozenset[str]]:
        async with self._pool.acquire() as conn:
            return await ignored_users_many(conn, user_ids)

    async def _build(self, request: SyncRequest, joined: dict[str, int]) -> SyncResult:
        user_id = request.user_id
        request.options = hiding(
            request.options, await self._ignored.get(user_id), self._recent.shadow_bans, user_id
        )
        # Read before the window: a change naming the user from now on voids what the
        # sections keep for them (unread counts).
        generation = self._notifier.generation(user_id)
        source = self._window(request, self._notifier.position, joined)
        self.answered[source.name] += 1
        sync = SyncAssembly(request, source, generation, joined)
        for section in self._room_sections:
            await section(sync)
        if not sync.whole:
            sync.join = {
                room_id: room for room_id, room in sync.join.items() if room_has_content(room)
            }
        for section in self._sections:
            await section(sync)
        await sync.serve()
        return sync.result()

    def _window(self, request: SyncRequest, upper: int, joined: dict[str, int]) -> WindowSource:
        def database() -> DatabaseWindow:
            return DatabaseWindow(
                self._pool, self._renderer, request, upper, self._receipts, self._account_data
            )

        if self._memory is not None:
            memory = self._memory.open(request, upper, joined, database)
            if memory is not None:
                return memory
        return database()
