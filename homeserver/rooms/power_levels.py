"""Power levels of a room, read from its `m.room.power_levels` state.

Reading is lenient: a value that is not an integer (or a numeric string, which
older room versions allowed) counts as absent, so a malformed event already in
the log can never crash authorization. Writing is strict; see `rooms/auth.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from homeserver.events.model import Event
from homeserver.events.room_versions import of_create_content
from homeserver.projections.room_state import RoomState

# Canonical JSON only allows integers in this range.
MIN_LEVEL = -(2**53) + 1
MAX_LEVEL = 2**53 - 1

# The level given to the creator of a room that has no power levels event yet.
CREATOR_LEVEL = 100
# The level of a room version 12 creator: above any level a power levels event can hold
# ("infinitely high"), so nothing a power levels event says can reach it.
UNLIMITED_LEVEL = MAX_LEVEL + 1

_NUMERIC = re.compile(r"[+-]?[0-9]+")


# Power levels events parsed lately: event ID -> (the content parsed, its levels).
# PowerLevels is immutable, so sharing one between rooms' states is safe.
PARSED_CACHE_SIZE = 4096
_PARSED: dict[str, tuple[Mapping[str, Any], PowerLevels]] = {}


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


def as_level(value: object) -> int | None:
    """The integer a power level value stands for, or None when it is junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        level = value
    elif isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        level = int(value.strip())
    else:
        return None
    return level if MIN_LEVEL <= level <= MAX_LEVEL else None


def _level_map(value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        return _empty()
    levels: dict[str, int] = {}
    for key, raw in value.items():
        level = as_level(raw)
        if isinstance(key, str) and level is not None:
            levels[key] = level
    return MappingProxyType(levels)


@dataclass(frozen=True, slots=True)
class PowerLevels:
    users: Mapping[str, int] = field(default_factory=_empty)
    users_default: int = 0
    events: Mapping[str, int] = field(default_factory=_empty)
    events_default: int = 0
    state_default: int = 50
    ban: int = 50
    kick: int = 50
    redact: int = 50
    invite: int = 0
    notifications: Mapping[str, int] = field(default_factory=_empty)
    # Room version 12's creators: the create event's sender and additional_creators,
    # whose power is unlimited whatever the power levels event says.
    creators: frozenset[str] = frozenset()

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> PowerLevels:
        """Levels from the content of an `m.room.power_levels` event."""
        defaults = cls()

        def level(key: str, default: int) -> int:
            parsed = as_level(content.get(key))
            return default if parsed is None else parsed

        return cls(
            users=_level_map(content.get("users")),
            users_default=level("users_default", defaults.users_default),
            events=_level_map(content.get("events")),
            events_default=level("events_default", defaults.events_default),
            state_default=level("state_default", defaults.state_default),
            ban=level("ban", defaults.ban),
            kick=level("kick", defaults.kick),
            redact=level("redact", defaults.redact),
            invite=level("invite", defaults.invite),
            notifications=_level_map(content.get("notifications")),
        )

    @classmethod
    def without_event(cls, creator: str | None) -> PowerLevels:
        """Levels of a room with no power levels event: its creator has 100, others 0."""
        users = {creator: CREATOR_LEVEL} if creator is not None else {}
        return cls(users=MappingProxyType(users))

    @classmethod
    def of_room(cls, state: RoomState) -> PowerLevels:
        create = state.get("m.room.create")
        creators = room_creators(create.sender, create.content) if create is not None else None
        entry = state.get("m.room.power_levels")
        if entry is None:
            levels = cls.without_event(state.creator())
        else:
            # Every draft's authorization asks; parse each power levels event once.
            cached = _PARSED.get(entry.event_id)
            if cached is not None and cached[0] is entry.content:
                levels = cached[1]
            else:
                levels = cls.from_content(entry.content)
                _PARSED[entry.event_id] = (entry.content, levels)
                while len(_PARSED) > PARSED_CACHE_SIZE:
                    del _PARSED[next(iter(_PARSED))]
        return levels.with_creators(creators) if creators else levels

    @classmethod
    def of_state(cls, create: Event | None, power_levels: Event | None) -> PowerLevels:
        """Levels from a room's create and power levels events, as read from the store."""
        return cls.of_contents(
            create.sender if create is not None else None,
            create.content if create is not None else None,
            power_levels.content if power_levels is not None else None,
        )

    @classmethod
    def of_contents(
        cls,
        creator: str | None,
        create: Mapping[str, Any] | None,
        power_levels: Mapping[str, Any] | None,
    ) -> PowerLevels:
        """Levels from the contents of a room's create and power levels events, and the
        create event's sender (the creators of a version 12 room are above them all)."""
        if power_levels is not None:
            levels = cls.from_content(power_levels)
        else:
            levels = cls.without_event(creator)
        creators = (
            room_creators(creator, create) if creator is not None and create is not None else None
        )
        return levels.with_creators(creators) if creators else levels

    def with_creators(self, creators: frozenset[str]) -> PowerLevels:
        return replace(self, creators=creators)

    def user_level(self, user_id: str) -> int:
        if user_id in self.creators:
            return UNLIMITED_LEVEL
        return self.users.get(user_id, self.users_default)

    def level_for_event(self, event_type: str, is_state: bool) -> int:
        """The level needed to send an event of this type."""
        if event_type in self.events:
            return self.events[event_type]
        return self.state_default if is_state else self.events_default

    def notification_level(self, key: str) -> int:
        """The level needed to trigger a notification such as `room` (@room)."""
        return self.notifications.get(key, 50)


_LEVEL_FIELDS = ("users_default", "events_default", "state_default", "ban", "kick", "redact")
_LEVEL_MAPS = ("users", "events", "notifications")


def fixed_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of power levels content with every level an integer: numeric strings (which
    room versions before 10 allowed) become integers and junk levels are dropped, other
    keys kept as they are (Synapse's copy_and_fixup_power_levels_contents). What an
    upgrade copies into a room whose version may demand integers."""
    fixed: dict[str, Any] = {}
    for key, value in content.items():
        if key in _LEVEL_FIELDS or key == "invite":
            if (level := as_level(value)) is not None:
                fixed[key] = level
        elif key in _LEVEL_MAPS:
            fixed[key] = dict(_level_map(value))
        else:
            fixed[key] = value
    return fixed


def room_creators(sender: str, create_content: Mapping[str, Any]) -> frozenset[str] | None:
    """The creators with unlimited power of a room version 12 room (its create event's
    sender and `additional_creators`), or None in a version where creators are not
    special once power levels exist."""
    if not of_create_content(create_content).creators_have_unlimited_power:
        return None
    additional = create_content.get("additional_creators")
    extra = (
        [user for user in additional if isinstance(user, str)]
        if isinstance(additional, list)
        else []
    )
    return frozenset([sender, *extra])


# The level m.room.tombstone needs in a new room version 12 room by default (as Synapse
# there): above every level a power levels event gives, so only creators upgrade it.
V12_TOMBSTONE_LEVEL = 150


def creators_levels(content: Mapping[str, Any], creators: frozenset[str]) -> dict[str, Any]:
    """Power levels for a room version 12 room: its creators out of `users` (their power
    is not the power levels' to give, rule 10.4) and a tombstone only creators send."""
    users = content.get("users")
    kept_users = (
        {user: level for user, level in users.items() if user not in creators}
        if isinstance(users, Mapping)
        else {}
    )
    events = content.get("events")
    events_map = dict(events) if isinstance(events, Mapping) else {}
    events_map["m.room.tombstone"] = V12_TOMBSTONE_LEVEL
    return {**content, "users": kept_users, "events": events_map}
