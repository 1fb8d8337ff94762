"""History visibility: which of a room's events a user may see (pure; no I/O).

The spec ("Room History Visibility", server behaviour) decides by the state of
the room *at the event*: the m.room.history_visibility setting and the user's
own membership then.

1. `world_readable` at the event: allow.
2. The user's membership at the event was `join`: allow.
3. `shared`, and the user joined at any point after the event: allow.
4. The user's membership was `invite` and the setting `invited`: allow.
5. Otherwise deny.

A history_visibility event is visible if the setting before *or* after it
allows; the user's own membership event if their membership before *or* after
it does. And "after a user has left a room, they may see any events which they
were allowed to see before they left, but no events received after they left":
that sentence is about the settings that need a membership, so a world_readable
event stays visible to one who left, as to anyone (rule 1; Synapse alike).

One more, as Synapse: a user always sees their own leave (a rejected invite, a kick
included), whatever the setting, so a client sees the room go even from a `joined`
room whose history it never saw (sytest "We should see our own leave event when
rejecting an invite, even if history_visibility is restricted").

rooms/access.py applies these rules for every endpoint; nothing else decides.

Everything here depends only on the positions of the user's membership events
and of the visibility events, so between two of those positions every event is
decided alike: `visible_ranges` turns that into position ranges a query can scan.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.events import types
from homeserver.events.model import Event

WORLD_READABLE = "world_readable"
SHARED = "shared"
INVITED = "invited"
JOINED = "joined"
SETTINGS = (WORLD_READABLE, SHARED, INVITED, JOINED)
DEFAULT_SETTING = SHARED

_GONE = ("leave", "ban")


def setting_of(content: Mapping[str, Any]) -> str:
    """The visibility a content sets; absent or not understood is `shared` (spec)."""
    value = content.get("history_visibility")
    return value if isinstance(value, str) and value in SETTINGS else DEFAULT_SETTING


def membership_of(content: Mapping[str, Any]) -> str:
    value = content.get("membership")
    return value if isinstance(value, str) else "leave"


def may_see(setting: str, membership: str | None, joined_later: bool) -> bool:
    """The spec's five rules for one (setting, membership) at an event."""
    if setting == WORLD_READABLE or membership == "join":
        return True
    if setting == SHARED and joined_later:
        return True
    return membership == "invite" and setting == INVITED


@dataclass(frozen=True)
class HistoryAccess:
    """What decides a user's view of one room: their own membership changes and the
    room's visibility changes, each as (stream position, value), oldest first."""

    memberships: tuple[tuple[int, str], ...] = ()
    settings: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_events(cls, user_id: str, events: Iterable[Event]) -> HistoryAccess:
        """From the user's m.room.member events and the room's history_visibility events."""
        memberships: list[tuple[int, str]] = []
        settings: list[tuple[int, str]] = []
        for event in sorted(events, key=lambda e: e.stream_position):
            if event.type == types.MEMBER and event.state_key == user_id:
                memberships.append((event.stream_position, membership_of(event.content)))
            elif event.type == types.HISTORY_VISIBILITY and event.state_key == "":
                settings.append((event.stream_position, setting_of(event.content)))
        return cls(tuple(memberships), tuple(settings))

    @property
    def membership(self) -> str | None:
        """The user's membership now (None if they never had one)."""
        return self.memberships[-1][1] if self.memberships else None

    @property
    def setting(self) -> str:
        """The room's visibility setting now."""
        return self.settings[-1][1] if self.settings else DEFAULT_SETTING

    def as_stranger(self) -> HistoryAccess:
        """The same room seen by one with no membership in it (one who forgot it)."""
        return HistoryAccess((), self.settings)

    def membership_at(self, position: int) -> str | None:
        """The user's membership once the event at `position` has taken effect."""
        index = bisect_right(self.memberships, (position, "\uffff"))
        return self.memberships[index - 1][1] if index else None

    def setting_at(self, position: int) -> str:
        index = bisect_right(self.settings, (position, "\uffff"))
        return self.settings[index - 1][1] if index else DEFAULT_SETTING

    def _joined_after(self, position: int) -> bool:
        return any(p > position and m == "join" for p, m in self.memberships)

    def _own_leave(self, position: int) -> bool:
        index = bisect_right(self.memberships, (position, "\uffff"))
        return index > 0 and self.memberships[index - 1] == (position, "leave")

    @property
    def _left_at(self) -> int | None:
        """Where the user's access ends: their leave or ban, if that is how things stand."""
        if self.memberships and self.memberships[-1][1] in _GONE:
            return self.memberships[-1][0]
        return None

    def allows_position(self, position: int) -> bool:
        """Whether the user may see the room's event at `position`.

        Before and after are asked alike for every event: they differ only for
        a visibility event (in the setting) or the user's own membership event
        (in the membership), which is exactly where the spec asks for either."""
        settings = {self.setting_at(position - 1), self.setting_at(position)}
        if WORLD_READABLE in settings or self._own_leave(position):
            return True
        left_at = self._left_at
        if left_at is not None and position > left_at:
            return False
        joined_later = self._joined_after(position)
        memberships = {self.membership_at(position - 1), self.membership_at(position)}
        return any(may_see(s, m, joined_later) for s in settings for m in memberships)

    def allows(self, event: Event) -> bool:
        return self.allows_position(event.stream_position)

    def visible_ranges(self, lowest: int, highest: int) -> list[tuple[int, int]]:
        """The positions in [lowest, highest] the user may see, as inclusive ranges, oldest
        first. Only the positions of changes are decided one by one; between two changes
        every position is decided alike."""
        if highest < lowest:
            return []
        changes = sorted(
            {p for p, _ in self.memberships if lowest <= p <= highest}
            | {p for p, _ in self.settings if lowest <= p <= highest}
        )
        pieces: list[tuple[int, int]] = []
        start = lowest
        for change in changes:
            if start <= change - 1:
                pieces.append((start, change - 1))
            pieces.append((change, change))
            start = change + 1
        if start <= highest:
            pieces.append((start, highest))
        ranges: list[tuple[int, int]] = []
        for first, last in pieces:
            if not self.allows_position(first):
                continue
            if ranges and ranges[-1][1] == first - 1:
                ranges[-1] = (ranges[-1][0], last)
            else:
                ranges.append((first, last))
        return ranges

    def filter(self, events: Iterable[Event]) -> list[Event]:
        return [event for event in events if self.allows(event)]
