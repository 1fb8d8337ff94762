"""Which members' m.room.member events each device was last sent, when it syncs with
`lazy_load_members` (the spec's "redundant" members, left out of later syncs unless the
filter asks for `include_redundant_members`).

As Synapse (`lazy_loaded_members_cache` in synapse/handlers/sync.py): kept in the
process, a bounded number per device, forgotten on an initial sync ("the client
has had amnesia"). It is a cache of what was sent, so losing it (another process
answers, a restart, an eviction) only sends a member again; it never leaves one
out that the device was not sent, because an entry is only trusted while no
membership change of that member has gone past it unsent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.sync.window import MembersWanted, WindowSource

# Per device, as Synapse's LAZY_LOADED_MEMBERS_CACHE_MAX_SIZE; devices kept, least
# recently syncing dropped first.
MEMBERS_PER_DEVICE = 100
DEVICES = 5_000

Device = tuple[str, str]  # user ID, device ID
Member = tuple[str, str]  # room ID, member's user ID


class LazyMembers:
    def __init__(self, devices: int = DEVICES, per_device: int = MEMBERS_PER_DEVICE) -> None:
        self._devices: OrderedDict[Device, OrderedDict[Member, str]] = OrderedDict()
        self._max_devices = devices
        self._per_device = per_device

    def _of(self, device: Device) -> OrderedDict[Member, str]:
        sent = self._devices.get(device)
        if sent is None:
            sent = self._devices[device] = OrderedDict()
            while len(self._devices) > self._max_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device)
        return sent

    def knows(self, device: Device) -> bool:
        return device in self._devices

    def forget(self, device: Device) -> None:
        """An initial sync: the device starts afresh."""
        self._devices.pop(device, None)

    def sent(self, device: Device, room_id: str, user_id: str) -> str | None:
        """The member event of `user_id` in the room last sent to the device, if known."""
        sent = self._devices.get(device)
        return sent.get((room_id, user_id)) if sent is not None else None

    def record(self, device: Device, events: Iterable[Event]) -> None:
        """The device was sent these events: note the member events among them."""
        sent: OrderedDict[Member, str] | None = None
        for event in events:
            if event.type != types.MEMBER or event.state_key is None:
                continue
            if sent is None:
                sent = self._of(device)
            key = (event.room_id, event.state_key)
            sent[key] = event.event_id
            sent.move_to_end(key)
        if sent is not None:
            while len(sent) > self._per_device:
                sent.popitem(last=False)

    def unsent(self, device: Device, events: Iterable[Event]) -> None:
        """Membership changes the device was not sent (a filter left them out): what it
        holds of those members is out of date."""
        sent = self._devices.get(device)
        if sent is None:
            return
        for event in events:
            if event.type == types.MEMBER and event.state_key is not None:
                sent.pop((event.room_id, event.state_key), None)

    async def to_send(
        self,
        source: WindowSource,
        device: Device,
        wanted: Sequence[MembersWanted],
        *,
        redundant: bool,
    ) -> dict[str, list[Event]]:
        """Per room, the member events wanted that the device was not sent already (all of
        them when `redundant`: include_redundant_members)."""
        if not wanted:
            return {}

        def known(room_id: str, user_id: str) -> bool:
            return not redundant and self.sent(device, room_id, user_id) is not None

        found = await source.members_at(wanted, known)
        if redundant:
            return found
        unsent: dict[str, list[Event]] = {}
        for room_id, events in found.items():
            new = [e for e in events if self.sent(device, room_id, e.state_key or "") != e.event_id]
            if new:
                unsent[room_id] = new
        return unsent
