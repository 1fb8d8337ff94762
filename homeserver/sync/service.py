"""GET /sync: what changed for one user and device since a token, waiting when nothing has.

The builder subscribes to the notifier before it reads, so a change committed
while it reads wakes it; it reads only up to the position the notifier has
seen, which is a prefix of the log (positions become visible in order).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.account_data.ignore import ignored_users_many
from homeserver.batching import Batched
from homeserver.events import types
from homeserver.events.client_format import client_event
from homeserver.events.model import Event, JsonDict
from homeserver.push.counts import NotificationCounter, RoomCounts, Window
from homeserver.rooms.access import visible_events
from homeserver.rooms.service import RoomService
from homeserver.store import profiles as profile_store
from homeserver.store import rooms as room_store
from homeserver.store import sync as sync_store
from homeserver.store.sync import RoomMembership, Summary
from homeserver.sync.encoding import RawJson
from homeserver.sync.notifier import Notifier
from homeserver.sync.options import (
    SyncOptions,
    hiding_ignored,
    unignored,
    unshaped,
    without_readers,
)
from homeserver.sync.recent import RecentEvent, RecentEvents, WindowSummary
from homeserver.sync.response import (
    SyncResult,
    add_receipt,
    add_unread_counts,
    empty_room,
    inviter,
    room_has_content,
    room_summary,
    sync_result,
    with_presence,
)
from homeserver.sync.sources import (
    AccountDataSource,
    DeviceListSource,
    OneTimeKeySource,
    PresenceSource,
    ReceiptSource,
    ToDeviceSource,
    TypingSource,
)
from homeserver.sync.tokens import SyncToken, pagination_token
from homeserver.sync.unread import DeviceCounts, UnreadCounts, moved_on, shown_counts

# State a client needs to show an invite (the spec's stripped state).
INVITE_STATE_TYPES = (
    types.CREATE,
    types.JOIN_RULES,
    types.NAME,
    "m.room.avatar",
    types.CANONICAL_ALIAS,
    "m.room.encryption",
    types.TOPIC,
)
MAX_TO_DEVICE = 100
JOINED_CACHE_SIZE = 50_000


class SyncService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        rooms: RoomService,
        counter: NotificationCounter,
        *,
        receipts: ReceiptSource | None = None,
        account_data: AccountDataSource | None = None,
        typing: TypingSource | None = None,
        presence: PresenceSource | None = None,
        to_device: ToDeviceSource | None = None,
        recent: RecentEvents | None = None,
        device_lists: DeviceListSource | None = None,
        one_time_keys: OneTimeKeySource | None = None,
    ) -> None:
        self._recent = recent
        self._device_lists = device_lists
        self._one_time_keys = one_time_keys
        self._joined_cache: dict[str, tuple[int, dict[str, int]]] = {}
        # A change naming many users (a to-device send to 200 devices) voids their caches
        # at once: the reads of the syncs it wakes share one query per turn of the loop.
        self._joined_reads: Batched[str, dict[str, int]] = Batched(self._read_joined)
        self._ignored_reads: Batched[str, frozenset[str]] = Batched(self._read_ignored)
        self._ignored_cache: dict[str, tuple[int, frozenset[str]]] = {}
        self._unread = UnreadCounts()
        self._counter = counter
        self._pool = pool
        self._notifier = notifier
        self._rooms = rooms
        self._receipts = receipts
        self._account_data = account_data
        self._typing = typing
        self._to_device = to_device
        self._presence = presence

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            latest = await sync_store.latest_position(conn)
        self._notifier.position = max(self._notifier.position, latest)
        if self._recent is not None:
            self._recent.start_at(self._notifier.position)

    async def sync(
        self,
        user_id: str,
        device_id: str,
        since: SyncToken | None,
        timeout_ms: int,
        options: SyncOptions,
        full_state: bool = False,
    ) -> JsonDict:
        result = await self.wait_for_changes(
            user_id, device_id, since, timeout_ms, options, full_state
        )
        return result.body

    async def wait_for_changes(
        self,
        user_id: str,
        device_id: str,
        since: SyncToken | None,
        timeout_ms: int,
        options: SyncOptions,
        full_state: bool = False,
    ) -> SyncResult:
        """Build the sync; when it is empty, wait for a change until `timeout_ms` runs out."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        # Subscribe before reading: a change committed while we read wakes us.
        await self._notifier.settled()
        joined = await self._joined(user_id)
        waiter = self._notifier.subscribe(user_id, joined)
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
                result = None
                if since is not None and not full_state:
                    result = await self._build_from_recent(
                        user_id, device_id, since, options, joined
                    )
                if result is None:
                    result = await self._build(user_id, device_id, since, options, full_state)
                    joined = {room_id: 0 for room_id in result.joined_rooms}
                remaining = deadline - time.monotonic()
                if result.has_changes or since is None or full_state or remaining <= 0:
                    return result
                # A join since we subscribed wakes by user ID; follow the new room too.
                self._notifier.retarget(waiter, result.joined_rooms)
                if not await waiter.wait(remaining):
                    return result
        finally:
            self._notifier.unsubscribe(waiter)

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
        return self._to_device is None or self._to_device.known_empty(
            user_id, device_id, since.to_device
        )

    async def _joined(self, user_id: str) -> dict[str, int]:
        """The user's joined rooms and join positions; cached until a change names them."""
        generation = self._notifier.generation(user_id)
        cached = self._joined_cache.get(user_id)
        if cached is not None and cached[0] == generation:
            return dict(cached[1])
        joined = await self._joined_reads.ask(user_id)
        self._joined_cache[user_id] = (generation, joined)
        while len(self._joined_cache) > JOINED_CACHE_SIZE:
            self._joined_cache.pop(next(iter(self._joined_cache)))
        return dict(joined)

    async def _read_joined(self, user_ids: list[str]) -> list[dict[str, int]]:
        async with self._pool.acquire() as conn:
            return await sync_store.joined_many(conn, user_ids)

    async def _read_ignored(self, user_ids: list[str]) -> list[frozenset[str]]:
        async with self._pool.acquire() as conn:
            return await ignored_users_many(conn, user_ids)

    async def _ignored(self, user_id: str) -> frozenset[str]:
        """Whom the user ignores (m.ignored_user_list); cached like `_joined`: a change of
        their account data names them, so the next sync reads the list again."""
        generation = self._notifier.generation(user_id)
        cached = self._ignored_cache.get(user_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        ignored = await self._ignored_reads.ask(user_id)
        self._ignored_cache[user_id] = (generation, ignored)
        while len(self._ignored_cache) > JOINED_CACHE_SIZE:
            self._ignored_cache.pop(next(iter(self._ignored_cache)))
        return ignored

    async def _build_from_recent(
        self,
        user_id: str,
        device_id: str,
        since: SyncToken,
        options: SyncOptions,
        joined: dict[str, int],
    ) -> SyncResult | None:
        """An incremental sync built from the in-memory tail of the log, or None.

        None (build from the database) when the tail does not cover the window,
        or when something in it needs more than the tail: the user's own
        membership or account facts changed, or a room's timeline is limited.
        """
        options = hiding_ignored(options, await self._ignored(user_id))
        generation = self._notifier.generation(user_id)
        upper = self._notifier.position
        summary = self._recent.summary(since.events, upper) if self._recent else None
        if summary is None or user_id in summary.touched:
            return None
        redacted_by = summary.redacted_by
        receipts: dict[str, JsonDict] = {}
        for event in summary.receipts:
            room_of_receipt = str(event.content["room_id"])
            if (
                room_of_receipt in joined
                and options.allows_room(room_of_receipt)
                and event.room_id not in options.ignored
            ):
                add_receipt(receipts, event)
        by_room = {
            room_id: items
            for room_id, items in summary.by_room.items()
            if (joined_at := joined.get(room_id)) is not None
            and joined_at <= since.events
            and options.allows_room(room_id)
        }
        limit = options.timeline_limit
        if any(len(items) > limit for items in by_room.values()):
            return None
        txn_ids = await self._own_transaction_ids(by_room, user_id, device_id)
        sections: dict[str, JsonDict] = {}
        now = int(time.time() * 1000)
        for room_id, items in by_room.items():
            timeline = [
                _serve_recent(item, redacted_by, txn_ids.get(item.event.event_id), now, options)
                for item in items
                if options.timeline_allows(item.event)
            ]
            room = empty_room(upper)
            room["timeline"] = {
                "events": timeline,
                "limited": False,
                "prev_batch": pagination_token(items[0].event.stream_position - 1),
            }
            sections[room_id] = room
        if options.ephemeral_allows("m.receipt"):
            for room_id, content in receipts.items():
                sections.setdefault(room_id, empty_room(upper))["ephemeral"]["events"].append(
                    {"type": "m.receipt", "content": content}
                )
        typing_serial = await self._typing.current_serial() if self._typing else 0
        if (
            self._typing is not None
            and typing_serial != since.typing  # equal: nobody started or stopped typing
            and options.ephemeral_allows("m.typing")
        ):
            typing = await self._typing.typing_for_sync(list(joined), since.typing)
            for room_id, users in typing.items():
                sections.setdefault(room_id, empty_room(upper))["ephemeral"]["events"].append(
                    {"type": "m.typing", "content": {"user_ids": unignored(users, options)}}
                )
        to_device_events, to_device_position = await self._pending_to_device(
            user_id, device_id, since
        )
        presence_events, presence_position = await self._presence_since(
            user_id, joined, since, options
        )
        sections = {room_id: room for room_id, room in sections.items() if room_has_content(room)}
        await self._add_counts_and_summaries(
            user_id,
            device_id,
            generation,
            upper,
            sections,
            summary.members_changed,
            options,
            window=(since.events, summary),
        )
        result = sync_result(
            SyncToken(upper, typing_serial, to_device_position, presence_position),
            sections,
            {},
            {},
            [],
            to_device_events,
            list(joined),
        )
        await self._add_encryption(result, user_id, device_id, since.events, upper, joined, summary)
        return with_presence(result, presence_events)

    async def _add_counts_and_summaries(
        self,
        user_id: str,
        device_id: str,
        generation: int,
        upper: int,
        sections: dict[str, JsonDict],
        members_changed: Collection[str],
        options: SyncOptions,
        window: tuple[int, WindowSummary] | None = None,
    ) -> None:
        """`unread_notifications` in every room shown, and `summary` in those whose
        members changed, for syncs built either way.

        With `window` (a long-poll answered from memory: its `since` and the window),
        every count this device's stream kept moves on by what the window's events add
        (push/counts.py), its room shown or not, and only counts never kept are read;
        without it, every count is read."""
        kept: DeviceCounts | None = None
        moved: dict[str, RoomCounts] = {}
        if window is not None:
            since, summary = window
            kept = self._unread.continuing(user_id, device_id, generation, since)
            if kept is not None:
                events = {
                    room_id: [item.event for item in items]
                    for room_id, items in summary.by_room.items()
                    if room_id in kept.by_room
                }
                added = await self._counter.window_counts(
                    user_id,
                    generation,
                    Window(events, summary.state_changed),
                    options.ignored,
                    upper,
                )
                moved = moved_on(kept, added)
        unread, missing = shown_counts(kept, moved, sections)
        changed = [room_id for room_id in sections if room_id in members_changed]
        room_summaries: dict[str, Summary] = {}
        if missing:
            joined = await self._joined(user_id)
            read = await self._counter.counts(
                user_id,
                generation,
                {room_id: joined.get(room_id, 0) for room_id in missing},
                upper,
                options.ignored,
            )
            unread.update(read)
            moved.update(read)
        if changed:
            async with self._pool.acquire() as conn:
                room_summaries = await sync_store.summaries(conn, changed, user_id)
        self._unread.keep(user_id, device_id, generation, upper, moved, merge=kept)
        for room_id, room in sections.items():
            add_unread_counts(room, unread[room_id], options.unread_thread_notifications)
            if room_id in room_summaries:
                room["summary"] = room_summary(room_summaries[room_id])

    async def _own_transaction_ids(
        self, by_room: dict[str, list[RecentEvent]], user_id: str, device_id: str
    ) -> dict[str, str]:
        """The transaction IDs this device gave the user's own events among `by_room`'s.

        Events the recent log took from this process's appender carry none: for those
        (only ever the sender's own), ask the database."""
        found: dict[str, str] = {}
        unknown: list[str] = []
        for items in by_room.values():
            for item in items:
                if item.event.sender != user_id:
                    continue
                if not item.txn_known:
                    unknown.append(item.event.event_id)
                elif item.device_id == device_id and item.txn_id is not None:
                    found[item.event.event_id] = item.txn_id
        if unknown:
            async with self._pool.acquire() as conn:
                found.update(await room_store.transaction_ids(conn, unknown, user_id, device_id))
        return found

    async def _presence_since(
        self, user_id: str, room_ids: Collection[str], since: SyncToken | None, options: SyncOptions
    ) -> tuple[list[JsonDict], int]:
        """The m.presence events of this sync and the presence position of its token;
        when nothing changed, one comparison in the presence service."""
        if self._presence is None or not options.wants_presence:
            return [], since.presence if since is not None else 0
        after = since.presence if since is not None else None
        return await self._presence.presence_for_sync(
            user_id, room_ids, after, options.presence_allows
        )

    async def _pending_to_device(
        self, user_id: str, device_id: str, since: SyncToken | None
    ) -> tuple[list[JsonDict], int]:
        position = since.to_device if since else 0
        if self._to_device is None:
            return [], position
        if since is not None and since.to_device:
            await self._to_device.acknowledge(user_id, device_id, since.to_device)
        return await self._to_device.pending(user_id, device_id, position, MAX_TO_DEVICE)

    async def _build(
        self,
        user_id: str,
        device_id: str,
        since: SyncToken | None,
        options: SyncOptions,
        full_state: bool,
    ) -> SyncResult:
        options = hiding_ignored(options, await self._ignored(user_id))
        # Read before the counts below: a change naming the user from now on voids them.
        generation = self._notifier.generation(user_id)
        upper = self._notifier.position
        typing_serial = await self._typing.current_serial() if self._typing else 0
        to_device_events, to_device_position = await self._pending_to_device(
            user_id, device_id, since
        )
        after = since.events if since is not None else None
        async with self._pool.acquire() as conn:
            memberships = [
                m
                for m in await sync_store.memberships(conn, user_id)
                if options.allows_room(m.room_id) and m.stream_position <= upper
            ]
            joined = [m for m in memberships if m.membership == "join"]
            invited = [
                m
                for m in memberships
                if m.membership == "invite" and (after is None or m.stream_position > after)
            ]
            left = [
                m
                for m in memberships
                if m.membership in ("leave", "ban")
                and (
                    (after is not None and m.stream_position > after)
                    or (after is None and options.include_leave)
                )
            ]
            join_section, members_changed = await self._joined_rooms(
                conn, user_id, device_id, joined, after, upper, options, full_state
            )
            leave_section = await self._left_rooms(conn, user_id, device_id, left, after, options)
            invite_section = await self._invites(conn, invited)
        invite_section = {
            room_id: room
            for room_id, room in invite_section.items()
            if inviter(room, user_id) not in options.ignored
        }
        await self._add_ephemeral(join_section, user_id, joined, after, upper, since, options)
        account_data: list[JsonDict] = []
        if self._account_data is not None:
            account_data = [
                item
                for item in await self._account_data.global_account_data_for_sync(
                    user_id, after, upper
                )
                if options.account_data_allows(item["type"])
            ]
            per_room = await self._account_data.room_account_data_for_sync(user_id, after, upper)
            for room_id, items in per_room.items():
                section = join_section.get(room_id)
                if section is not None:
                    section["account_data"]["events"] = [
                        i for i in items if options.account_data_allows(i["type"])
                    ]
        join_section = {
            room_id: room
            for room_id, room in join_section.items()
            if room_has_content(room) or after is None or full_state
        }
        # Counted once the sections are whole: a receipt of one's own, say, shows the
        # room with its count back at 0.
        await self._add_counts_and_summaries(
            user_id, device_id, generation, upper, join_section, members_changed, options
        )
        presence_events, presence_position = await self._presence_since(
            user_id, await self._joined(user_id), since, options
        )
        result = sync_result(
            SyncToken(upper, typing_serial, to_device_position, presence_position),
            join_section,
            invite_section,
            leave_section,
            account_data,
            to_device_events,
            [m.room_id for m in joined],
        )
        with_presence(result, presence_events)
        await self._add_encryption(
            result, user_id, device_id, after, upper, {m.room_id for m in joined}, None
        )
        await self._serve_all(result.body, user_id, device_id, options)
        return result

    async def _add_encryption(
        self,
        result: SyncResult,
        user_id: str,
        device_id: str,
        since: int | None,
        upper: int,
        joined: Collection[str],
        window: WindowSummary | None,
    ) -> None:
        """`device_lists`, `device_one_time_keys_count` and `device_unused_fallback_key_types`
        (homeserver/e2ee), for syncs built either way; `window` when built from memory."""
        if self._device_lists is not None:
            changed, left = await self._device_lists.for_sync(user_id, since, upper, joined, window)
            result.body["device_lists"] = {"changed": changed, "left": left}
            if changed or left:
                result.has_changes = True
        if self._one_time_keys is not None:
            counts, fallback = await self._one_time_keys.one_time_keys_for_sync(user_id, device_id)
            result.body["device_one_time_keys_count"] = counts
            result.body["device_unused_fallback_key_types"] = fallback

    async def _serve_all(
        self, body: JsonDict, user_id: str, device_id: str, options: SyncOptions
    ) -> None:
        """Replace every `_Unserved` in `body` by its events in client form, in one batch.

        Serving needs the pool, so it runs after the builder has released its
        connection: a sync never holds two connections (20 long-polls would
        otherwise exhaust a pool of 20).
        """
        slots: list[tuple[JsonDict, str, _Unserved]] = []

        def collect(node: object) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if isinstance(value, _Unserved):
                        slots.append((node, key, value))
                    else:
                        collect(value)

        collect(body)
        events = [event for _, _, unserved in slots for event in unserved.events]
        served = await self._rooms.serve(events, (user_id, device_id), include_room_id=False)
        shaped = iter([options.shape(item) for item in served])
        for parent, key, unserved in slots:
            parent[key] = [next(shaped) for _ in unserved.events]

    async def _joined_rooms(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        device_id: str,
        joined: list[RoomMembership],
        after: int | None,
        upper: int,
        options: SyncOptions,
        full_state: bool,
    ) -> tuple[dict[str, JsonDict], set[str]]:
        """The joined rooms' sections, and the rooms whose members changed (or are new)."""
        limit = options.timeline_limit
        fresh = [m for m in joined if after is None or full_state or m.stream_position > after]
        if after is not None and not full_state and fresh:
            # A join event after a join only changed the member's profile: no new room.
            rejoined = await profile_store.joined_at(
                conn, user_id, [m.room_id for m in fresh], after
            )
            fresh = [m for m in fresh if m.room_id not in rejoined]
        fresh_ids = {m.room_id for m in fresh}
        continuing = [m.room_id for m in joined if m.room_id not in fresh_ids]
        active = (
            await sync_store.rooms_with_events(conn, continuing, after, upper)
            if continuing and after is not None and after < upper
            else set()
        )
        windows = [(m.room_id, 0, upper) for m in fresh]
        windows += [(room_id, after or 0, upper) for room_id in continuing if room_id in active]
        fetched = await sync_store.timelines(conn, windows, limit + 1)
        sections: dict[str, JsonDict] = {}
        state_for_fresh = await sync_store.current_state(conn, [m.room_id for m in fresh])
        gaps: list[tuple[str, int, int]] = []
        timelines: dict[str, list[Event]] = {}
        limited: dict[str, bool] = {}
        for room_id, _, _ in windows:
            events = fetched.get(room_id, [])
            limited[room_id] = len(events) > limit
            events = events[-limit:] if limit else []
            if room_id in fresh_ids:
                # A room the user just joined: only what history visibility allows.
                events = await visible_events(conn, user_id, room_id, events)
            timelines[room_id] = [e for e in events if options.timeline_allows(e)]
            if room_id not in fresh_ids and limited[room_id] and events:
                gaps.append((room_id, after or 0, events[0].stream_position))
        gap_state = await sync_store.state_changes(conn, gaps)
        for room_id, _, _ in windows:
            timeline = timelines[room_id]
            in_timeline = {e.event_id for e in timeline}
            if room_id in fresh_ids:
                state = [
                    e for e in state_for_fresh.get(room_id, []) if e.event_id not in in_timeline
                ]
            else:
                state = gap_state.get(room_id, [])
            state = [e for e in state if options.state_allows(e)]
            if options.lazy_load_members:
                senders = {e.sender for e in timeline} | {user_id}
                state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
            first = timeline[0].stream_position if timeline else upper + 1
            sections[room_id] = {
                "timeline": {
                    "events": _Unserved(timeline),
                    "limited": limited[room_id],
                    "prev_batch": pagination_token(first - 1),
                },
                "state": {"events": _Unserved(state)},
                "ephemeral": {"events": []},
                "account_data": {"events": []},
            }
        for room_id in continuing:
            sections.setdefault(room_id, empty_room(upper))
        members_changed = {
            room_id
            for room_id, room in sections.items()
            if room_id in fresh_ids
            or any(e.type == types.MEMBER for e in room["timeline"]["events"])
            or any(e.type == types.MEMBER for e in room["state"]["events"])
        }
        return sections, members_changed

    async def _left_rooms(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        device_id: str,
        left: list[RoomMembership],
        after: int | None,
        options: SyncOptions,
    ) -> dict[str, JsonDict]:
        limit = options.timeline_limit
        windows = [(m.room_id, after or 0, m.stream_position) for m in left]
        fetched = await sync_store.timelines(conn, windows, limit + 1)
        sections: dict[str, JsonDict] = {}
        for membership in left:
            events = fetched.get(membership.room_id, [])
            limited = len(events) > limit
            # The window may reach back before the user could see the room (an invite
            # refused, a join and leave within the window, an initial sync with leave).
            events = events[-limit:] if limit else []
            events = await visible_events(conn, user_id, membership.room_id, events)
            timeline = [e for e in events if options.timeline_allows(e)]
            first = timeline[0].stream_position if timeline else membership.stream_position + 1
            state = await room_store.state_events_at(conn, membership.room_id, first - 1)
            sections[membership.room_id] = {
                "timeline": {
                    "events": _Unserved(timeline),
                    "limited": limited,
                    "prev_batch": pagination_token(first - 1),
                },
                "state": {"events": _Unserved([e for e in state if options.state_allows(e)])},
                "account_data": {"events": []},
            }
        return sections

    async def _invites(
        self, conn: asyncpg.Connection, invited: list[RoomMembership]
    ) -> dict[str, JsonDict]:
        sections: dict[str, JsonDict] = {}
        states = await sync_store.current_state(conn, [m.room_id for m in invited])
        for membership in invited:
            stripped = [
                {
                    "type": e.type,
                    "state_key": e.state_key,
                    "content": dict(e.content),
                    "sender": e.sender,
                }
                for e in states.get(membership.room_id, [])
                if e.type in INVITE_STATE_TYPES or e.event_id == membership.event_id
            ]
            sections[membership.room_id] = {"invite_state": {"events": stripped}}
        return sections

    async def _add_ephemeral(
        self,
        sections: dict[str, JsonDict],
        user_id: str,
        joined: list[RoomMembership],
        after: int | None,
        upper: int,
        since: SyncToken | None,
        options: SyncOptions,
    ) -> None:
        room_ids = [m.room_id for m in joined]
        receipts: dict[str, JsonDict] = {}
        typing: dict[str, list[str]] = {}
        if self._receipts is not None and options.ephemeral_allows("m.receipt"):
            receipts = await self._receipts.receipts_for_sync(user_id, room_ids, after, upper)
            receipts = without_readers(receipts, options.ignored)
        if self._typing is not None and options.ephemeral_allows("m.typing"):
            typing = await self._typing.typing_for_sync(
                room_ids, since.typing if since is not None else None
            )
        for room_id in room_ids:
            events: list[JsonDict] = []
            if room_id in receipts:
                events.append({"type": "m.receipt", "content": receipts[room_id]})
            if room_id in typing:
                events.append(
                    {
                        "type": "m.typing",
                        "content": {"user_ids": unignored(typing[room_id], options)},
                    }
                )
            if events:
                sections.setdefault(room_id, empty_room(upper))["ephemeral"]["events"] = events


@dataclass(frozen=True, slots=True)
class _Unserved:
    """Events to serve once the builder's connection is released."""

    events: Sequence[Event]

    def __bool__(self) -> bool:
        return bool(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


def _serve_recent(
    item: RecentEvent,
    redacted_by: dict[str, Event],
    transaction_id: str | None,
    now: int,
    options: SyncOptions,
) -> JsonDict | RawJson:
    """An event of the recent tail in client form; pre-encoded unless it is redacted in the
    same window or the filter's event_fields reshape it."""
    event = item.event
    redaction = redacted_by.get(event.event_id) if redacted_by else None
    if redaction is None and options.shape is unshaped:
        return item.encoded().serve(now, transaction_id)
    return options.shape(
        client_event(
            event,
            redacted_by=redaction,
            transaction_id=transaction_id,
            now_ms=now,
            include_room_id=False,
        )
    )
