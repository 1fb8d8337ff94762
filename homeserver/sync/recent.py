"""The tail of the log, in memory: what most incremental syncs need, read once per process.

When a change is committed in another process, `advance` reads the new events
once; every long-poll woken by that change then builds its answer from memory
instead of querying PostgreSQL itself. With 1,000 members waiting in one room,
that is one query instead of ten for each of them. A batch this process
committed right after the head is taken as the appender hands it over
(`extend`), with the transaction IDs it was sent with, without reading it back.

The shadow-bans (rooms/shadow_bans.py) are kept with the tail, folded in from the
ban facts as the events are taken in, so they always hold every ban up to the
head: a sync, which reads nothing past the head, hides by them alike whether its
window is read from memory or from the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from homeserver.events import types
from homeserver.events.client_format import EncodedEvent
from homeserver.events.model import Event, JsonDict, TxnKey
from homeserver.rooms.shadow_bans import NO_SHADOW_BANS, ShadowBans, load_shadow_bans
from homeserver.store import events as event_store
from homeserver.store import sync as sync_store
from homeserver.sync.response import add_receipt

log = logging.getLogger(__name__)


# An event with the sending device and transaction ID, when it was sent with one.
HeldRow = tuple[Event, str | None, str | None]


@dataclass(slots=True)
class RecentEvent:
    event: Event
    device_id: str | None  # the sending device and its transaction ID, when it gave one
    txn_id: str | None
    _encoded: EncodedEvent | None = field(default=None, repr=False, compare=False)

    def encoded(self) -> EncodedEvent:
        """The event's client JSON, encoded once for every sync that serves it."""
        if self._encoded is None:
            self._encoded = EncodedEvent(self.event)
        return self._encoded


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """The events of a window sorted the way every incremental sync reads them.

    Long-polls woken by one commit share their `since` and the new head, so they
    share this, computed once instead of once per member. Read-only: the lists
    and dicts are shared between syncs.
    """

    # Chains with events in the window, and users whose membership changed in it:
    # a sync for such a user needs more than the tail (its own facts changed).
    touched: frozenset[str]
    by_room: dict[str, list[RecentEvent]]  # every event but receipts, by chain
    events_by_room: dict[str, list[Event]]  # the same, as events
    by_id: dict[str, RecentEvent]
    # Per room, the m.receipt content of the window's receipts (public ones: a private
    # receipt is its owner's own fact, whose sync is not answered from the tail).
    receipts: dict[str, JsonDict]
    redacted_by: dict[str, Event]  # event ID -> the first redaction of it in the window
    # Per room, the last member or power levels change: what push rules read of the
    # room changed (push/counts.py).
    state_changed: dict[str, int]
    # Rooms someone joined, left, was invited to... (homeserver/e2ee reads them).
    members_changed: frozenset[str]


def summarize(window: Sequence[RecentEvent]) -> WindowSummary:
    touched: set[str] = set()
    by_room: dict[str, list[RecentEvent]] = {}
    by_id: dict[str, RecentEvent] = {}
    receipts: dict[str, JsonDict] = {}
    redacted_by: dict[str, Event] = {}
    state_changed: dict[str, int] = {}
    members_changed: set[str] = set()
    for item in window:
        event = item.event
        touched.add(event.room_id)
        if event.state_key is not None and event.type in (types.MEMBER, types.POWER_LEVELS):
            state_changed[event.room_id] = event.stream_position
        if event.type == types.MEMBER and event.state_key is not None:
            touched.add(event.state_key)
            members_changed.add(event.room_id)
        if event.type == types.REDACTION and event.redacts is not None:
            redacted_by.setdefault(event.redacts, event)
        if event.type == types.RECEIPT and isinstance(event.content.get("room_id"), str):
            add_receipt(receipts, event)
        else:
            by_room.setdefault(event.room_id, []).append(item)
            by_id[event.event_id] = item
    events_by_room = {room: [item.event for item in items] for room, items in by_room.items()}
    return WindowSummary(
        frozenset(touched),
        by_room,
        events_by_room,
        by_id,
        receipts,
        redacted_by,
        state_changed,
        frozenset(members_changed),
    )


# Summaries kept: a few rounds of wake-ups in flight at once.
SUMMARY_CACHE_SIZE = 8


class RecentEvents:
    def __init__(self, pool: asyncpg.Pool, capacity: int = 20_000, max_fetch: int = 5_000) -> None:
        self._pool = pool
        self._events: deque[RecentEvent] = deque()
        self._capacity = capacity
        self._max_fetch = max_fetch
        self._lock = asyncio.Lock()
        # Every event with floor < position <= head is held.
        self.floor = 0
        self.head = 0
        # Every shadow-ban up to the head.
        self.shadow_bans = NO_SHADOW_BANS
        self._summaries: dict[tuple[int, int], WindowSummary] = {}
        # Catch-ups: reads of the log for events this process did not commit itself
        # (or could not take as handed over), and the events they read, for the metrics.
        self.catch_ups = 0
        self.caught_up_events = 0
        self.received = 0  # other processes' batches taken from the bus, not read
        self._foreign_listeners: list[Callable[[Sequence[Event]], None]] = []

    def start_at(self, position: int, shadow_bans: ShadowBans) -> None:
        """Start at `position`, with the shadow-bans as of it (or later)."""
        self.floor = self.head = position
        self.shadow_bans = shadow_bans

    def add_foreign_listener(self, listener: Callable[[Sequence[Event]], None]) -> None:
        """Called with the events other processes committed, as they are taken in."""
        self._foreign_listeners.append(listener)

    def extend(self, events: Sequence[Event], txns: Mapping[str, TxnKey]) -> bool:
        """Hold a batch this process committed, with the transaction keys its events were
        sent with, if it directly follows the head (no other process's events in between,
        none being read); False when it does not."""
        rows = [
            (event, txn.device_id, txn.txn_id)
            if (txn := txns.get(event.event_id))
            else (event, None, None)
            for event in events
        ]
        if not self._follows_head(rows):
            return False
        self._take(rows, events[-1].stream_position, theirs=False)
        return True

    async def log_head(self) -> int:
        """The log's latest position, read from PostgreSQL."""
        async with self._pool.acquire() as conn:
            return await event_store.last_position(conn)

    async def advance(self, position: int) -> None:
        """Read the log up to `position` (one query, shared by all who ask at once)."""
        async with self._lock:
            if position <= self.head:
                return
            if position - self.head > self._max_fetch:
                # Too far behind to be worth holding: start afresh from here (with the
                # bans as of now, which cover every position up to here).
                async with self._pool.acquire() as conn:
                    self.shadow_bans = await load_shadow_bans(conn)
                self._events.clear()
                self.floor = self.head = position
                return
            async with self._pool.acquire() as conn:
                rows = await sync_store.events_between(conn, self.head, position)
            self.catch_ups += 1
            self.caught_up_events += len(rows)
            self._take(rows, position)

    def receive(self, rows: Sequence[HeldRow]) -> bool:
        """Hold another process's batch as the bus carried it (each event with the
        device and transaction ID it was sent with), if it directly follows the head
        and none is being read; False when it does not (then `advance` reads it)."""
        if not self._follows_head(rows):
            return False
        self.received += 1
        self._take(rows, rows[-1][0].stream_position)
        return True

    def _follows_head(self, rows: Sequence[HeldRow]) -> bool:
        if self._lock.locked() or not rows or rows[0][0].stream_position != self.head + 1:
            return False
        return all(
            after.stream_position == before.stream_position + 1
            for (before, _, _), (after, _, _) in itertools.pairwise(rows)
        )

    def _take(self, rows: Sequence[HeldRow], head: int, theirs: bool = True) -> None:
        """Hold committed events up to `head`; tell the listeners of other processes'."""
        events = [event for event, _, _ in rows]
        self.shadow_bans = self.shadow_bans.with_events(events)
        for event, device_id, txn_id in rows:
            self._events.append(RecentEvent(event, device_id, txn_id))
        self.head = head
        self._trim()
        for listener in self._foreign_listeners if theirs else ():
            try:
                listener(events)
            except Exception:
                log.exception("recent events listener failed")

    def _trim(self) -> None:
        while len(self._events) > self._capacity:
            self.floor = self._events.popleft().event.stream_position

    def summary(self, after: int, upto: int) -> WindowSummary | None:
        """`summarize` of `window(after, upto)`, shared by the syncs that ask for the same."""
        if after < self.floor or upto > self.head:
            return None
        key = (after, upto)
        found = self._summaries.get(key)
        if found is None:
            window = self.window(after, upto)
            if window is None:
                return None
            found = self._summaries[key] = summarize(window)
            while len(self._summaries) > SUMMARY_CACHE_SIZE:
                del self._summaries[next(iter(self._summaries))]
        return found

    def window(self, after: int, upto: int) -> list[RecentEvent] | None:
        """Events in (after, upto], or None when they are not all held."""
        if after < self.floor or upto > self.head:
            return None
        found = []
        for item in reversed(self._events):
            position = item.event.stream_position
            if position <= after:
                break
            if position <= upto:
                found.append(item)
        found.reverse()
        return found
