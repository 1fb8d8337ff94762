"""Wakes long-polls when something they may care about has been committed.

A committed batch is summarised as a `Change` (the new position, the rooms and
the users it touches) and published on the bus, so a long-poll held by another
process wakes too. Waiters are indexed by room and by user; a wake-up carries
no events, only the hint to look again, so wake-ups coalesce and never queue.

Between processes the bus message also carries the batch's events when they
are small enough (`CARRIED_BYTES`): the other process then holds them at once,
as the appender hands this one its own, instead of reading them from the log.
Messages that arrive out of order or while a read is under way fall back to
the read; the position in the message is what counts.

A bus between processes loses what is published while it is disconnected.
Then, once a second until it is back and once more when it is, the notifier
catches up by stream position: it reads the log's head and wakes the rooms
and users of every event after the last position it was sure of (all waiters,
and every per-user cache, when the tail no longer holds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from homeserver.alarm import Alarm
from homeserver.bus.base import Bus
from homeserver.events import canonical, types
from homeserver.events.model import Event
from homeserver.log.appender import Committed
from homeserver.sync.recent import HeldRow, RecentEvents

log = logging.getLogger(__name__)

CHANNEL = "stream"
# A committed batch's events travel with its bus message up to this size; a larger
# batch is read from the log by the other processes.
CARRIED_BYTES = 48_000
# Other processes' changes held while one is delivered, before they coalesce.
MAX_PENDING = 64
# While the bus is disconnected, how often the log's head is read instead.
CATCH_UP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Change:
    position: int
    rooms: frozenset[str]
    users: frozenset[str]


def change_of(events: Sequence[Event]) -> Change:
    """Which rooms and users a committed batch touches."""
    rooms: set[str] = set()
    users: set[str] = set()
    for event in events:
        if types.is_room_chain(event.room_id):
            rooms.add(event.room_id)
            if event.type == types.MEMBER and event.state_key is not None:
                users.add(event.state_key)
        elif types.is_account_chain(event.room_id):
            users.add(event.room_id)
            room = event.content.get("room_id")
            if event.type == types.RECEIPT and isinstance(room, str):
                rooms.add(room)
    return Change(max(e.stream_position for e in events), frozenset(rooms), frozenset(users))


def _carried(batch: Committed) -> list[list[object]] | None:
    """A batch's events as a bus message carries them to other processes, or None when
    they are too large to (those processes then read them from the log)."""
    carried: list[list[object]] = []
    size = 0
    for event in batch.events:
        logged = event.logged if event.logged is not None else canonical.encode(event.pdu)
        size += len(logged)
        if size > CARRIED_BYTES:
            return None
        txn = batch.txns.get(event.event_id)
        carried.append(
            [
                event.event_id,
                event.stream_position,
                logged.decode(),
                txn.device_id if txn is not None else None,
                txn.txn_id if txn is not None else None,
            ]
        )
    return carried


def _received(carried: list[list[Any]]) -> list[HeldRow]:
    return [
        (
            Event.from_pdu(event_id, canonical.decode(logged), position, logged.encode()),
            device_id,
            txn_id,
        )
        for event_id, position, logged, device_id, txn_id in carried
    ]


class Waiter:
    """One long-poll's subscription; `wait` returns when woken or timed out."""

    __slots__ = ("_alarm", "rooms", "user_id")

    def __init__(self, user_id: str, rooms: frozenset[str]) -> None:
        self.user_id = user_id
        self.rooms = rooms
        self._alarm = Alarm()

    def wake(self) -> None:
        self._alarm.ring()

    async def wait(self, seconds: float) -> bool:
        """True when woken (now or earlier), False on timeout."""
        return await self._alarm.sleep(seconds)


class Notifier:
    def __init__(self, bus: Bus, recent: RecentEvents, *, carry_events: bool = False) -> None:
        self._bus = bus
        self._carry_events = carry_events
        self._recent = recent
        self._origin = secrets.token_hex(6)
        self._by_room: dict[str, set[Waiter]] = {}
        self._by_user: dict[str, set[Waiter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self.position = 0
        self.woken = 0  # waiters woken by a change, for the metrics
        # Per user, a count of changes naming them; a cache keyed by it is current
        # until the next change (record it before the read the cache holds).
        self._generations: dict[str, int] = {}
        # Bumped when changes may have been missed: every cache is stale.
        self._epoch = 0
        # Every change up to here has woken its waiters (see `_watch`).
        self._sure = 0
        self._catching_up = asyncio.Lock()
        self.releasing = False
        # Other processes' changes waiting while one is delivered, each with its events
        # when its message carried them (see `_on_bus_message`).
        self._pending: list[tuple[Change, list[HeldRow] | None]] = []
        self._delivering = False
        bus.subscribe(CHANNEL, self._on_bus_message)
        bus.on_resumed(self._resumed)

    def start(self) -> None:
        self._sure = self.position
        self._spawn(self._watch())

    def generation(self, user_id: str) -> int:
        # Both only grow, so an unchanged sum means neither changed.
        return self._epoch + self._generations.get(user_id, 0)

    # Subscriptions

    def release_all(self) -> None:
        """Shutting down: wake every waiter, now and from now on, so each long-poll
        answers with what it has instead of holding the process past its grace."""
        self.releasing = True
        for waiters in list(self._by_user.values()):
            for waiter in waiters:
                waiter.wake()

    def subscribe(self, user_id: str, rooms: Iterable[str]) -> Waiter:
        waiter = Waiter(user_id, frozenset(rooms))
        if self.releasing:
            waiter.wake()
        for room in waiter.rooms:
            self._by_room.setdefault(room, set()).add(waiter)
        self._by_user.setdefault(user_id, set()).add(waiter)
        return waiter

    def retarget(self, waiter: Waiter, rooms: Iterable[str]) -> None:
        """Change the rooms a waiter listens to, keeping a wake-up it already got."""
        wanted = frozenset(rooms)
        for room in waiter.rooms - wanted:
            _discard(self._by_room, room, waiter)
        for room in wanted - waiter.rooms:
            self._by_room.setdefault(room, set()).add(waiter)
        waiter.rooms = wanted

    def unsubscribe(self, waiter: Waiter) -> None:
        for room in waiter.rooms:
            _discard(self._by_room, room, waiter)
        _discard(self._by_user, waiter.user_id, waiter)

    @property
    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self._by_user.values())

    # Changes

    def committed(self, batch: Committed) -> None:
        """Appender listener: wake local waiters now, tell other processes.

        A batch that directly follows what the recent log holds goes into it as is,
        with its transaction IDs, and its waiters wake at once: no read of the log
        back, no task to wait for."""
        change = change_of(batch.events)
        carried = _carried(batch) if self._carry_events else None
        if self._recent.extend(batch.events, batch.txns):
            self._wake(change)
            self._publish(change, carried)
        else:
            self.notify(change, carried)

    def notify(self, change: Change, carried: list[list[object]] | None = None) -> None:
        """Wake local waiters (once the recent log holds the change), tell other processes
        (with the change's events, when `carried` holds them)."""
        self._deliveries.add(self._spawn(self._deliver(change)))
        self._publish(change, carried)

    def _publish(self, change: Change, events: list[list[object]] | None = None) -> None:
        body: dict[str, object] = {
            "o": self._origin,
            "p": change.position,
            "r": sorted(change.rooms),
            "u": sorted(change.users),
        }
        if events is not None:
            body["e"] = events
        self._spawn(self._bus.publish(CHANNEL, json.dumps(body)))

    async def settled(self) -> None:
        """Wait until changes committed by this process so far are readable.

        A client that sends and then syncs at once must see its own event, even
        though waking readers happens just after the send's commit."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("delivering a change failed: %s", task.exception())

    def _on_bus_message(self, message: str) -> None:
        data = json.loads(message)
        if data.get("o") == self._origin:
            return
        change = Change(int(data["p"]), frozenset(data["r"]), frozenset(data["u"]))
        rows = _received(data["e"]) if "e" in data else None
        if not self._delivering and rows is not None and self._recent.receive(rows):
            # The batch itself came along, right after what is held: no read of the log.
            self._wake(change)
            return
        # Changes wait in order while one is being delivered (reads of the log are one
        # at a time anyway); each is taken from its own events if they then follow what
        # is held. Past MAX_PENDING a burst coalesces into one read and one wake-up
        # round, so memory holds a bounded number of changes, not a task per message.
        self._pending.append((change, rows))
        if len(self._pending) > MAX_PENDING:
            merged = self._pending[0][0]
            for later, _ in self._pending[1:]:
                merged = _merged(merged, later)
            self._pending = [(merged, None)]
        if not self._delivering:
            self._delivering = True
            self._spawn(self._deliver_pending())

    async def _deliver_pending(self) -> None:
        try:
            while self._pending:
                change, rows = self._pending.pop(0)
                if rows is not None and self._recent.receive(rows):
                    self._wake(change)
                    continue
                try:
                    await self._deliver(change)
                except Exception as error:  # woken anyway; the next change reads again
                    log.warning("delivering a change failed: %s", error)
        finally:
            self._delivering = False

    async def _deliver(self, change: Change) -> None:
        try:
            await self._recent.advance(change.position)
        finally:
            # Readers never go past `position`, and by now the recent log holds it.
            self._wake(change)

    def _wake(self, change: Change) -> None:
        self.position = max(self.position, change.position)
        woken = 0
        for room in change.rooms:
            for waiter in self._by_room.get(room, ()):
                waiter.wake()
                woken += 1
        for user in change.users:
            self._generations[user] = self._generations.get(user, 0) + 1
            for waiter in self._by_user.get(user, ()):
                waiter.wake()
                woken += 1
        self.woken += woken

    # Catching up when the bus lost messages

    async def _watch(self) -> None:
        """While the bus is connected, note how far changes surely arrived (a tick back,
        as a message lost just before the disconnect was noticed is later than the
        position of the tick before); while it is not, catch up every tick."""
        previous = self.position
        while True:
            await asyncio.sleep(CATCH_UP_SECONDS)
            if self._bus.connected:
                self._sure = max(self._sure, previous)
                previous = self.position
            else:
                try:
                    await self.catch_up()
                except Exception as error:  # PostgreSQL away as well: try next tick
                    log.warning("catching up from the log failed: %s", error)
                previous = self._sure

    def _resumed(self) -> None:
        self._spawn(self.catch_up())

    async def catch_up(self) -> None:
        """Wake whatever changed after the last position surely delivered."""
        async with self._catching_up:
            head = await self._recent.log_head()
            if head <= self._sure:
                return
            await self._recent.advance(head)
            window = self._recent.window(self._sure, head)
            if window is None:
                # Too far back for the tail: every cache, every waiter.
                self._epoch += 1
                self.position = max(self.position, head)
                for waiters in list(self._by_user.values()):
                    for waiter in waiters:
                        waiter.wake()
            elif window:
                self._wake(change_of([item.event for item in window]))
            self._sure = head

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _merged(first: Change, second: Change) -> Change:
    return Change(
        max(first.position, second.position),
        first.rooms | second.rooms,
        first.users | second.users,
    )


def _discard(index: dict[str, set[Waiter]], key: str, waiter: Waiter) -> None:
    waiters = index.get(key)
    if waiters is not None:
        waiters.discard(waiter)
        if not waiters:
            del index[key]
