"""Current state of one chain (room, account or alias), as a pure reducer.

The appender keeps one `RoomState` per chain it writes to and folds each
accepted event into it with `apply`, so authorization of the next event in the
same batch sees the effect of the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from homeserver.events.model import Event

StateKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StateEntry:
    event_id: str
    sender: str
    content: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChainHead:
    event_id: str
    depth: int
    stream_position: int


@dataclass(frozen=True, slots=True)
class RoomState:
    room_id: str
    head: ChainHead | None = None
    entries: Mapping[StateKey, StateEntry] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def exists(self) -> bool:
        return self.head is not None

    def get(self, event_type: str, state_key: str = "") -> StateEntry | None:
        return self.entries.get((event_type, state_key))

    def content(self, event_type: str, state_key: str = "") -> Mapping[str, Any] | None:
        entry = self.entries.get((event_type, state_key))
        return entry.content if entry is not None else None

    def membership(self, user_id: str) -> str | None:
        content = self.content("m.room.member", user_id)
        if content is None:
            return None
        membership = content.get("membership")
        return membership if isinstance(membership, str) else None

    def members(self, membership: str = "join") -> list[str]:
        return [
            key[1]
            for key, entry in self.entries.items()
            if key[0] == "m.room.member" and entry.content.get("membership") == membership
        ]

    def creator(self) -> str | None:
        entry = self.get("m.room.create")
        return entry.sender if entry is not None else None

    def join_rule(self) -> str:
        content = self.content("m.room.join_rules")
        rule = content.get("join_rule") if content is not None else None
        return rule if isinstance(rule, str) else "invite"


def apply(state: RoomState, event: Event) -> RoomState:
    """Fold one accepted event of this chain into its state."""
    head = ChainHead(event.event_id, event.depth, event.stream_position)
    if event.state_key is None:
        return RoomState(state.room_id, head, state.entries)
    entries = dict(state.entries)
    entries[(event.type, event.state_key)] = StateEntry(event.event_id, event.sender, event.content)
    return RoomState(state.room_id, head, MappingProxyType(entries))
