"""What one sync reads of the log in its window (since, upper]: the one interface the
sync sections (sync/sections/) read through, whoever answers.

Two sources answer it: the in-memory tail of the log (sync/memory_window.py), for
the long-polls it holds everything for, which is most of them; and the database
(sync/database_window.py), for everything else. A section is written once, against
`WindowSource`, so the two ways a sync is built cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.events.model import Event, JsonDict
from homeserver.push.counts import Window as HeldWindow
from homeserver.rooms.rendering import EventFacts, Viewer
from homeserver.store.sync import RoomMembership
from homeserver.sync.options import SyncOptions
from homeserver.sync.recent import WindowSummary
from homeserver.sync.tokens import SyncToken


@dataclass(slots=True)
class SyncRequest:
    """What one sync asks for."""

    user_id: str
    device_id: str
    since: SyncToken | None
    options: SyncOptions  # hiding what the user must not see (options.hiding)
    full_state: bool = False
    # Rooms read without being in them (world_readable; the v1 /events and
    # /rooms/{roomId}/initialSync), shown as joined rooms are.
    peek: frozenset[str] = frozenset()
    # The log position the sync continues from (None: an initial sync).
    after: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.after = self.since.events if self.since is not None else None

    @property
    def viewer(self) -> Viewer:
        return (self.user_id, self.device_id)


@dataclass(slots=True)
class Memberships:
    """The user's rooms at the end of the window, those the filter allows."""

    joined: Mapping[str, int]  # room ID -> position of the user's join, in a stable order
    # Joined rooms shown whole (all their state): joined in the window, or every joined
    # room of an initial or full-state sync. A join after a join (a profile change) is
    # not a new room.
    fresh: frozenset[str] = frozenset()
    invited: Sequence[RoomMembership] = ()  # invited in the window (initial: invited now)
    left: Sequence[RoomMembership] = ()  # left or banned in the window (initial: include_leave)
    # Rooms left that are new to the user: they were not joined to them at the window's
    # start (every left room of an initial or full-state sync); shown with their state.
    left_fresh: frozenset[str] = frozenset()
    peeked: frozenset[str] = frozenset()  # of the request's `peek`, those not joined


@dataclass(slots=True)
class TimelineWindow:
    """A room's events in (after, upto] that a sync shows the end of."""

    room_id: str
    after: int
    upto: int
    # The window may reach back before the user could see the room (a room joined or left
    # in it, an initial sync): keep only what history visibility lets them see.
    visibility: bool = False
    # Where the user joined the room, if they are in it now (rooms/access.visible_events).
    joined_at: int | None = None


@dataclass(slots=True)
class Timeline:
    """What a room's timeline shows of its window: the last `limit` events the user may see
    that the sync's timeline filter lets through, looking as far back in the window as
    it takes to find them (a filtered timeline fills up to its limit)."""

    events: list[Event]  # oldest first
    limited: bool  # more such events are in the window before them
    # Every event of the window up to the last is shown: there is no gap before the first
    # in which the room's state could have changed.
    gapless: bool = False


@dataclass(frozen=True, slots=True)
class MembersWanted:
    """The m.room.member events of some users in a room as of a position (inclusive)."""

    room_id: str
    position: int
    user_ids: Collection[str]


# Whether the device already holds the member event of a user in a room (room, user).
KnownMember = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class AccountData:
    """Account data events ({type, content}) written in the window."""

    global_events: Sequence[JsonDict] = ()
    by_room: Mapping[str, Sequence[JsonDict]] = field(default_factory=dict)


class WindowSource(Protocol):
    """The log in (request.after, upper], as one sync for `request` reads it."""

    @property
    def name(self) -> str: ...  # "memory" or "database"

    @property
    def request(self) -> SyncRequest: ...

    @property
    def upper(self) -> int: ...

    @property
    def held(self) -> HeldWindow | None:
        """The window's events by room, and the rooms whose members or power levels
        changed in it, when known without reading (the tail's): sync/unread.py moves
        unread counts on by what they add (push/counts.py)."""

    @property
    def summary(self) -> WindowSummary | None:
        """The tail's summary of the window, when the tail answers (homeserver/e2ee reads
        the device list changes in it)."""

    async def memberships(self) -> Memberships: ...

    async def new_events(self, room_ids: Collection[str], limit: int) -> dict[str, Timeline]:
        """Per room of `room_ids` with events in the window, its timeline (the user is in
        those rooms throughout: all their events are visible)."""

    async def timelines(self, windows: Sequence[TimelineWindow], limit: int) -> dict[str, Timeline]:
        """Each window's timeline, by room (a room has one window at most)."""

    async def current_state(self, room_ids: Sequence[str]) -> dict[str, list[Event]]: ...

    async def state_changes(self, gaps: Sequence[tuple[str, int, int]]) -> dict[str, list[Event]]:
        """Per room, the latest state event of each key changed in (after, before)."""

    async def state_at(self, rooms: Sequence[tuple[str, int]]) -> dict[str, list[Event]]:
        """Each room's state as of a position."""

    async def members_at(
        self, wanted: Sequence[MembersWanted], known: KnownMember
    ) -> dict[str, list[Event]]:
        """Per room, the member events asked for (users with no membership then have none).
        A source holding the window may leave out a member whose membership did not
        change in it when `known` says the device holds it already."""

    async def receipts(self, room_ids: Collection[str]) -> dict[str, JsonDict]:
        """Per room, the m.receipt content of the receipts written in the window."""

    async def account_data(self) -> AccountData: ...

    async def facts(self, events: Sequence[Event], bundled: Collection[str]) -> EventFacts:
        """What serving `events` to the request's device needs beyond the events, with the
        bundled aggregations of those `bundled` names (sync/assembly.py)."""
