"""Unread counts (`unread_notifications`), read from the database or moved on in memory.

A room's counts are the notifications and highlights the user's push rules give
for the events after their read receipts there, per thread (push/counts.py
reads them from the database and evaluates what the push follower has not
reached). A long-poll woken by new events must not query that again: each
device's stream keeps the counts it last served (`DeviceCounts`, as of one
position) and moves them on by what the next window's events add (push/counts.py
evaluates them in memory). The counts depend on the user and the position only:
when several connections of one device wake for the same change, the first moves
them on and the others show what it kept. Whatever would change them otherwise — a receipt, a
join or leave, a change of the ignore list or of the push rules — is a change
naming the user, which bumps the notifier's generation for them and voids what
was kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from homeserver.push.counts import RoomCounts, merged

MAX_DEVICES = 50_000


@dataclass(slots=True)
class DeviceCounts:
    """The counts one device's sync stream was last told, as of `position`."""

    generation: int  # of the user's own changes, read before the counts were
    position: int
    by_room: dict[str, RoomCounts] = field(default_factory=dict)

    def snapshot(self) -> DeviceCounts:
        """A copy to move on from: another sync of the device may move these on while a
        sync awaits (several connections of one device woken by the same change)."""
        return DeviceCounts(self.generation, self.position, dict(self.by_room))


class UnreadCounts:
    def __init__(self, max_devices: int = MAX_DEVICES) -> None:
        self._devices: dict[tuple[str, str], DeviceCounts] = {}
        self._max_devices = max_devices

    def at(
        self, user_id: str, device_id: str, generation: int, position: int
    ) -> DeviceCounts | None:
        """The counts this device's stream was served at `position`, if the user changed
        nothing since (`generation`): a sync continuing from there moves them on, one
        ending there shows them as they are."""
        kept = self._devices.get((user_id, device_id))
        if kept is None or kept.generation != generation or kept.position != position:
            return None
        return kept

    def keep(
        self,
        user_id: str,
        device_id: str,
        generation: int,
        position: int,
        by_room: Mapping[str, RoomCounts],
        *,
        merge: DeviceCounts | None = None,
    ) -> None:
        """Remember the counts served at `position`, with those of `merge` (a snapshot of
        what was kept earlier for this stream, taken over) for the rooms `by_room` leaves
        out. The oldest streams go first."""
        key = (user_id, device_id)
        current = self._devices.get(key)
        if current is not None and current.position > position:
            return  # a concurrent sync of the same stream got further: keep its counts
        if current is not None and (current.position, current.generation) == (position, generation):
            # Kept here already, by another connection of the device woken by the same
            # change or by this sync: the same counts, of the same or other rooms.
            current.by_room.update(by_room)
            return
        rooms = merge.by_room if merge is not None else {}
        rooms.update(by_room)
        self._devices.pop(key, None)
        self._devices[key] = DeviceCounts(generation, position, rooms)
        while len(self._devices) > self._max_devices:
            self._devices.pop(next(iter(self._devices)))


def moved_on(kept: DeviceCounts, added: Mapping[str, RoomCounts]) -> dict[str, RoomCounts]:
    """The kept counts of the window's rooms plus what its events added (rooms whose
    counts were not kept are left out)."""
    return {
        room_id: merged(before, more)
        for room_id, more in added.items()
        if (before := kept.by_room.get(room_id)) is not None
    }


def shown_counts(
    kept: DeviceCounts | None, moved: Mapping[str, RoomCounts], shown: Iterable[str]
) -> tuple[dict[str, RoomCounts], list[str]]:
    """The counts of the rooms a sync shows, and those it must read (not kept)."""
    counts: dict[str, RoomCounts] = {}
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
