"""Unread counts (`unread_notifications`), read from the database or moved on in memory.

A room's count is the number of messages (`m.room.message`, `m.room.encrypted`)
from others (not ignored) after the user's latest read receipt there, or after their join
(store/sync.unread_counts reads it from the database). A long-poll woken by
new messages must not query that again: each device's stream keeps the counts
it last served (`DeviceCounts`, as of one position) and moves them on by the
messages in the next window. Whatever would change them otherwise — a receipt,
a join or leave, a change of the ignore list — is a change naming the user,
which bumps the notifier's generation for them and voids what was kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from homeserver.events.model import Event

COUNTED_TYPES = frozenset({"m.room.message", "m.room.encrypted"})
MAX_DEVICES = 50_000


def counts_for(event: Event) -> bool:
    """Whether the event raises the unread count of everyone in its room but its sender."""
    return event.state_key is None and event.type in COUNTED_TYPES


# Per room, how many counted messages each sender sent in a window (sync/recent.py
# tallies them once per window, for every long-poll it wakes).
Tallies = Mapping[str, Mapping[str, int]]


@dataclass(slots=True)
class DeviceCounts:
    """The counts one device's sync stream was last told, as of `position`."""

    generation: int  # of the user's own changes, read before the counts were
    position: int
    by_room: dict[str, int] = field(default_factory=dict)


class UnreadCounts:
    def __init__(self, max_devices: int = MAX_DEVICES) -> None:
        self._devices: dict[tuple[str, str], DeviceCounts] = {}
        self._max_devices = max_devices

    def continuing(
        self, user_id: str, device_id: str, generation: int, since: int
    ) -> DeviceCounts | None:
        """The counts kept for a sync continuing from `since`, if still true there."""
        kept = self._devices.get((user_id, device_id))
        if kept is None or kept.generation != generation or kept.position != since:
            return None
        return kept

    def keep(
        self,
        user_id: str,
        device_id: str,
        generation: int,
        position: int,
        by_room: Mapping[str, int],
        *,
        merge: DeviceCounts | None = None,
    ) -> None:
        """Remember the counts served at `position`, with those of `merge` (kept earlier
        for this stream) for the rooms `by_room` leaves out. The oldest streams go first."""
        key = (user_id, device_id)
        current = self._devices.get(key)
        if current is not None and current.position > position:
            return  # a concurrent sync of the same stream got further: keep its counts
        if merge is not None and merge is current:
            # The stream moving on, as every long-poll does: in place, nothing copied.
            current.generation, current.position = generation, position
            current.by_room.update(by_room)
            return
        rooms = dict(merge.by_room) if merge is not None else {}
        rooms.update(by_room)
        self._devices.pop(key, None)
        self._devices[key] = DeviceCounts(generation, position, rooms)
        while len(self._devices) > self._max_devices:
            self._devices.pop(next(iter(self._devices)))


def moved_on(
    kept: DeviceCounts, user_id: str, tallies: Tallies, ignored: frozenset[str] = frozenset()
) -> dict[str, int]:
    """The kept counts of the window's rooms plus the messages others sent there, but
    not those the user ignores (rooms whose count was not kept are left out)."""
    return {
        room_id: before + _from_others(by_sender, user_id, ignored)
        for room_id, by_sender in tallies.items()
        if (before := kept.by_room.get(room_id)) is not None
    }


def _from_others(by_sender: Mapping[str, int], user_id: str, ignored: frozenset[str]) -> int:
    count = sum(by_sender.values()) - by_sender.get(user_id, 0)
    if ignored:
        count -= sum(n for sender, n in by_sender.items() if sender in ignored)
    return count


def shown_counts(
    kept: DeviceCounts | None, moved: Mapping[str, int], shown: Iterable[str]
) -> tuple[dict[str, int], list[str]]:
    """The counts of the rooms a sync shows, and those it must read (not kept)."""
    counts: dict[str, int] = {}
    missing: list[str] = []
    for room_id in shown:
        count = moved.get(room_id)
        if count is None and kept is not None:
            count = kept.by_room.get(room_id)  # no message in the window: unchanged
        if count is None:
            missing.append(room_id)
        else:
            counts[room_id] = count
    return counts, missing
