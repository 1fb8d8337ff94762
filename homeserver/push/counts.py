"""Unread notification counts for /sync, from the user's push rules.

A room's counts are the notifications (and, of those, the highlights) after the
user's read receipts there: per thread ("main" and each thread root), a
threaded receipt reading its thread, an unthreaded one all of them.

The push follower (push/sender.py) records every notification as a row; but
the spec wants the count moved by an event "in the same /sync response as the
event itself", and the follower may not have reached it yet. So:

- read from the database (`counts`, an initial sync or a sync whose user's own
  facts changed): the follower's rows up to its position F, in one snapshot
  with F, plus the events after F evaluated here, with the same rules and the
  same exclusions (push/evaluation.py);
- a long-poll answered from memory (`window_counts`) evaluates the window's
  events here, on what it keeps in memory: each user's compiled rules and
  display names (until a change names them), each room's member count and
  power levels (until a window shows them changed).

Evaluation is cheap once compiled: each event's properties are looked up once
for every member it is counted for (`EventView`s are kept per event).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import asyncpg

from homeserver.batching import SharedReads
from homeserver.events.model import Event
from homeserver.log.positions import FollowerPositions
from homeserver.push.evaluation import (
    MAIN_THREAD,
    RulesBook,
    is_push_candidate,
    room_facts,
    thread_of,
    view_of,
)
from homeserver.push.rules import CompiledRules, EventView, Plan, Recipient, RoomFacts, plan
from homeserver.store import push as push_store

# Per thread ("main" or a root): (notifications, highlights).
RoomCounts = dict[str, tuple[int, int]]
# The events no count of the user counts, whatever their rules: their ignored users',
# and what is hidden from them (sync/options.py `uncounted`).
Skipped = Callable[[Event], bool]

USERS_KEPT = 50_000
ROOMS_KEPT = 50_000
VIEWS_KEPT = 20_000
# The most positions past the push follower a sync evaluates itself.
MAX_TAIL_POSITIONS = 5_000
# The longest a sync waits for the push follower after the user changed their rules
# (woken when the follower records a position: log/positions.py). It takes
# milliseconds, unless no process runs the follower (a takeover, for seconds).
FOLLOWER_WAIT_SECONDS = 10.0


def add(counts: RoomCounts, thread: str, highlight: bool) -> None:
    notified, highlighted = counts.get(thread, (0, 0))
    counts[thread] = (notified + 1, highlighted + (1 if highlight else 0))


def merged(before: RoomCounts, more: RoomCounts) -> RoomCounts:
    if not more:
        return before
    total = dict(before)
    for thread, (notified, highlighted) in more.items():
        was = total.get(thread, (0, 0))
        total[thread] = (was[0] + notified, was[1] + highlighted)
    return total


def rendered(counts: RoomCounts, by_thread: bool) -> tuple[dict[str, int], dict[str, object]]:
    """`unread_notifications`, and `unread_thread_notifications` when asked for by thread
    (then the main timeline's alone is in the first; else every thread's is)."""
    if by_thread:
        main = counts.get(MAIN_THREAD, (0, 0))
        threads: dict[str, object] = {
            thread: {"notification_count": n, "highlight_count": h}
            for thread, (n, h) in counts.items()
            if thread != MAIN_THREAD and n
        }
        return {"notification_count": main[0], "highlight_count": main[1]}, threads
    notified = sum(n for n, _ in counts.values())
    highlighted = sum(h for _, h in counts.values())
    return {"notification_count": notified, "highlight_count": highlighted}, {}


@dataclass(slots=True)
class _User:
    generation: int
    compiled: CompiledRules
    names: dict[str, str | None]  # room -> display name
    recipients: dict[str, Recipient] = field(default_factory=dict)  # room -> as evaluated

    def recipient(self, user_id: str, room_id: str) -> Recipient:
        found = self.recipients.get(room_id)
        if found is None:
            found = self.recipients[room_id] = Recipient(user_id, self.names.get(room_id))
        return found


@dataclass(slots=True)
class _Room:
    read_at: int  # the position the facts were read at (or later)
    facts: RoomFacts


@dataclass(slots=True)
class Window:
    """A long-poll's window: each room's events in (since, upto], in order."""

    events_by_room: Mapping[str, Sequence[Event]]
    # Rooms whose members or power levels changed in the window, and the last position.
    state_changed: Mapping[str, int] = field(default_factory=dict)


class NotificationCounter:
    def __init__(self, pool: asyncpg.Pool, positions: FollowerPositions) -> None:
        self._pool = pool
        self._positions = positions
        self._book = RulesBook()
        self._users: OrderedDict[str, _User] = OrderedDict()
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._user_reads: SharedReads[tuple[str, int], _User] = SharedReads()
        self._room_reads: SharedReads[tuple[str, int], RoomFacts] = SharedReads()
        # The last member or power levels change seen per room: facts read before it
        # are stale.
        self._changed_at: dict[str, int] = {}
        self._views: OrderedDict[str, EventView] = OrderedDict()
        # Per event, ruleset and room facts: what is left to decide per member. Every
        # member on the default rules shares one, so a long-poll woken by a message
        # decides the shared conditions once for all of them.
        # The ruleset and facts are kept in the entry, so their ids are not reused while
        # it lives.
        self._plans: OrderedDict[tuple[str, int, int], tuple[Plan, CompiledRules, RoomFacts]] = (
            OrderedDict()
        )

    def forget_user(self, user_id: str) -> None:
        self._users.pop(user_id, None)

    def state_changed(self, changes: Mapping[str, int]) -> None:
        for room_id, position in changes.items():
            if position > self._changed_at.get(room_id, 0):
                self._changed_at[room_id] = position
                if len(self._changed_at) > ROOMS_KEPT:
                    self._changed_at.pop(next(iter(self._changed_at)))

    async def _user(self, user_id: str, generation: int) -> _User:
        found = self._users.get(user_id)
        if found is not None and found.generation == generation:
            self._users.move_to_end(user_id)
            return found
        # Every connection of the user woken by one message gets here at once: one read.
        key = (user_id, generation)
        return (await self._user_reads.read([key], self._read_users))[key]

    async def _read_users(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], _User]:
        user_ids = list(dict.fromkeys(user_id for user_id, _ in keys))
        async with self._pool.acquire() as conn:
            stored = await push_store.stored_rules(conn, user_ids)
            names = {user_id: await push_store.display_names(conn, user_id) for user_id in user_ids}
        found: dict[tuple[str, int], _User] = {}
        for user_id, generation in keys:
            user = _User(
                generation, self._book.compiled(user_id, stored.get(user_id)), names[user_id]
            )
            current = self._users.get(user_id)
            if current is None or current.generation <= generation:
                self._users[user_id] = user
            found[(user_id, generation)] = user
        while len(self._users) > USERS_KEPT:
            self._users.popitem(last=False)
        return found

    async def _facts(self, room_ids: Iterable[str], upto: int) -> dict[str, RoomFacts]:
        found: dict[str, RoomFacts] = {}
        stale: list[tuple[str, int]] = []
        for room_id in room_ids:
            kept = self._rooms.get(room_id)
            changed_at = self._changed_at.get(room_id, 0)
            if kept is not None and kept.read_at >= changed_at:
                found[room_id] = kept.facts
            else:
                # A read started once this change was known has it: share one in flight
                # (every long-poll of the room woken by one message gets here at once).
                stale.append((room_id, changed_at))
        if stale:
            read = await self._room_reads.read(stale, partial(self._read_facts, upto))
            found.update((room_id, read[(room_id, at)]) for room_id, at in stale)
        return found

    async def _read_facts(
        self, upto: int, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], RoomFacts]:
        async with self._pool.acquire() as conn:
            rows = await push_store.current_room_facts(conn, [room_id for room_id, _ in keys])
        found: dict[tuple[str, int], RoomFacts] = {}
        for room_id, changed_at in keys:
            row = rows.get(room_id)
            facts = (
                room_facts(row.joined, row.power_levels, row.creator, row.create)
                if row is not None
                else room_facts(0, None, None)
            )
            # Read now, so at least as of `upto`: current for every window up to it.
            kept = self._rooms.get(room_id)
            if kept is None or kept.read_at <= upto:
                self._rooms[room_id] = _Room(upto, facts)
            found[(room_id, changed_at)] = facts
        while len(self._rooms) > ROOMS_KEPT:
            self._rooms.popitem(last=False)
        return found

    def _plan(self, event: Event, compiled: CompiledRules, facts: RoomFacts) -> Plan:
        key = (event.event_id, id(compiled), id(facts))
        found = self._plans.get(key)
        if found is None or found[1] is not compiled or found[2] is not facts:
            found = self._plans[key] = (plan(compiled, self._view(event), facts), compiled, facts)
            while len(self._plans) > VIEWS_KEPT:
                self._plans.popitem(last=False)
        return found[0]

    def _view(self, event: Event) -> EventView:
        view = self._views.get(event.event_id)
        if view is None:
            view = self._views[event.event_id] = view_of(event)
            while len(self._views) > VIEWS_KEPT:
                self._views.popitem(last=False)
        return view

    async def _evaluate(
        self,
        user_id: str,
        generation: int,
        events_by_room: Mapping[str, Iterable[Event]],
        skipped: Skipped,
        upto: int,
        read: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, RoomCounts]:
        user = await self._user(user_id, generation)
        rooms = [room_id for room_id, events in events_by_room.items() if events]
        facts = await self._facts(rooms, upto)
        return self._count(user_id, user, facts, rooms, events_by_room, skipped, read)

    def _cached(
        self, user_id: str, generation: int, rooms: Iterable[str]
    ) -> tuple[_User, dict[str, RoomFacts]] | None:
        """The user's rules and the rooms' facts when all are in memory and current (a
        long-poll's usual case: no coroutine, no lock)."""
        user = self._users.get(user_id)
        if user is None or user.generation != generation:
            return None
        facts: dict[str, RoomFacts] = {}
        for room_id in rooms:
            kept = self._rooms.get(room_id)
            if kept is None or kept.read_at < self._changed_at.get(room_id, 0):
                return None
            facts[room_id] = kept.facts
        return user, facts

    def _count(
        self,
        user_id: str,
        user: _User,
        facts: Mapping[str, RoomFacts],
        rooms: Iterable[str],
        events_by_room: Mapping[str, Iterable[Event]],
        skipped: Skipped,
        read: Mapping[str, Mapping[str, int]] | None,
    ) -> dict[str, RoomCounts]:
        counted: dict[str, RoomCounts] = {}
        for room_id in rooms:
            counts: RoomCounts = {}
            recipient = user.recipient(user_id, room_id)
            floors = read.get(room_id) if read is not None else None
            room = facts[room_id]
            for event in events_by_room[room_id]:
                if event.sender == user_id or skipped(event):
                    continue  # push/evaluation.may_notify, and what is hidden from them
                if not is_push_candidate(event):
                    continue
                thread = thread_of(event)
                if floors and event.stream_position <= max(
                    floors.get("", 0), floors.get(thread, 0)
                ):
                    continue
                decided = self._plan(event, user.compiled, room)
                outcome = decided.outcome_for(self._view(event), recipient)
                if outcome is not None and outcome.notify:
                    add(counts, thread, outcome.highlight)
            counted[room_id] = counts
        return counted

    async def window_counts(
        self, user_id: str, generation: int, window: Window, skipped: Skipped, upto: int
    ) -> dict[str, RoomCounts]:
        """What the window's events add to each of its rooms' counts."""
        self.state_changed(window.state_changed)
        rooms = [room_id for room_id, events in window.events_by_room.items() if events]
        cached = self._cached(user_id, generation, rooms)
        if cached is not None:
            user, facts = cached
            return self._count(user_id, user, facts, rooms, window.events_by_room, skipped, None)
        return await self._evaluate(user_id, generation, window.events_by_room, skipped, upto)

    async def _after_follower(
        self, user_id: str, rooms: list[str], upto: int
    ) -> tuple[int, dict[str, RoomCounts], push_store.ReadPositions]:
        """The counts once the push follower reached `upto`, or as far as it got in
        FOLLOWER_WAIT_SECONDS."""
        deadline = time.monotonic() + FOLLOWER_WAIT_SECONDS
        with self._positions.watching(push_store.FOLLOWER_NAME, upto) as reached:
            while True:
                async with self._pool.acquire() as conn:
                    found = await push_store.unread_notifications(conn, user_id, rooms, upto)
                if found[0] >= upto or not await reached.sleep(deadline - time.monotonic()):
                    return found

    async def counts(
        self,
        user_id: str,
        generation: int,
        joined_at: Mapping[str, int],
        upto: int,
        skipped: Skipped,
    ) -> dict[str, RoomCounts]:
        """Each room's unread counts as of `upto`, read from the database."""
        rooms = list(joined_at)
        async with self._pool.acquire() as conn:
            follower, counts, read = await push_store.unread_notifications(
                conn, user_id, rooms, upto
            )
            # The user changed their rules or ignore list after the follower's
            # position: the events before that change count by the rules of then,
            # which the follower applies. Give it a moment to get there.
            wait = follower < upto and await push_store.account_facts_changed(
                conn, user_id, follower, upto
            )
            tail = [] if wait else await _tail(conn, rooms, follower, upto)
        if wait:
            follower, counts, read = await self._after_follower(user_id, rooms, upto)
            async with self._pool.acquire() as conn:
                tail = await _tail(conn, rooms, follower, upto)
        result: dict[str, RoomCounts] = {room_id: counts.get(room_id, {}) for room_id in rooms}
        if tail:
            # What the follower has not reached yet, counted as it will count it: events
            # of rooms the user had joined by then.
            by_room: dict[str, list[Event]] = {}
            for event in tail:
                if event.stream_position > joined_at.get(event.room_id, upto):
                    by_room.setdefault(event.room_id, []).append(event)
            more = await self._evaluate(user_id, generation, by_room, skipped, upto, read)
            for room_id, extra in more.items():
                result[room_id] = merged(result[room_id], extra)
        return result


async def _tail(
    conn: asyncpg.Connection, rooms: list[str], follower: int, upto: int
) -> list[Event]:
    """The events the follower has not reached. One far behind (first started on a long
    log) is not replaced by evaluating all it has left here: only the newest stretch."""
    after = max(follower, upto - MAX_TAIL_POSITIONS)
    return await push_store.events_after(conn, rooms, after, upto)
