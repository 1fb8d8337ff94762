"""The window of a long-poll read from the in-memory tail of the log (sync/recent.py).

Most long-polls are woken by events in rooms the user has long been in: their
window is held in memory, summarized once for every poll the same commit wakes
(`WindowSummary`), and its events are served pre-encoded. `MemoryWindows.open`
answers only such polls: the tail holds the whole window, and nothing in it is the
user's own fact (a membership of theirs, their account data, receipts, ignore
list: those need the database). A room's timeline and the state changed in the
gap before it (a timeline cut short by its limit or its filter) come from the
window too. What the tail cannot know (a room's state from before the window) is
asked of the database, so an answer is never wrong, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from homeserver.events import types
from homeserver.events.client_format import EncodedEvent
from homeserver.events.model import Event, JsonDict
from homeserver.events.room_versions import LEGACY, RoomVersion
from homeserver.push.counts import Window as HeldWindow
from homeserver.rooms.rendering import EventFacts, StoredFacts
from homeserver.sync.database_window import DatabaseWindow
from homeserver.sync.options import everything
from homeserver.sync.recent import RecentEvents, WindowSummary
from homeserver.sync.window import (
    AccountData,
    KnownMember,
    Memberships,
    MembersWanted,
    SyncRequest,
    Timeline,
    TimelineWindow,
)

_NO_ACCOUNT_DATA = AccountData()
_NONE: list[Event] = []


class MemoryWindows:
    def __init__(self, recent: RecentEvents) -> None:
        self._recent = recent

    def open(
        self,
        request: SyncRequest,
        upper: int,
        joined: Mapping[str, int],
        database: Callable[[], DatabaseWindow],
    ) -> MemoryWindow | None:
        """The window of an incremental sync if the tail can answer it, else None.
        `joined` is the user's joined rooms (room -> join position), current for the
        user's changes so far; `database` makes the window of the database, asked what
        the tail does not hold."""
        since = request.after
        if since is None or request.full_state or request.peek:
            return None
        summary = self._recent.summary(since, upper)
        if summary is None or request.user_id in summary.touched:
            return None
        options = request.options
        rooms = (
            joined
            if options.allows_room is everything
            else {room_id: at for room_id, at in joined.items() if options.allows_room(room_id)}
        )
        return MemoryWindow(summary, request, upper, Memberships(rooms), database)


@dataclass(slots=True)
class MemoryWindow:
    summary: WindowSummary
    request: SyncRequest
    upper: int
    rooms: Memberships
    # Makes the database's window, for what the tail does not hold (when first asked).
    make_database: Callable[[], DatabaseWindow]
    made_database: DatabaseWindow | None = None
    name: ClassVar[str] = "memory"

    @property
    def database(self) -> DatabaseWindow:
        if self.made_database is None:
            self.made_database = self.make_database()
        return self.made_database

    @property
    def held(self) -> HeldWindow:
        return HeldWindow(self.summary.events_by_room, self.summary.state_changed)

    async def memberships(self) -> Memberships:
        return self.rooms

    async def new_events(self, room_ids: Collection[str], limit: int) -> dict[str, Timeline]:
        allows = self.request.options.timeline_allows
        found: dict[str, Timeline] = {}
        for room_id, events in self.summary.events_by_room.items():
            if room_id in room_ids:
                found[room_id] = _timeline(events, limit, allows)
        return found

    async def timelines(self, windows: Sequence[TimelineWindow], limit: int) -> dict[str, Timeline]:
        since, upper, held = self.request.after, self.upper, self.summary.events_by_room
        allows = self.request.options.timeline_allows
        found: dict[str, Timeline] = {}
        elsewhere: list[TimelineWindow] = []
        for window in windows:
            if window.after != since or window.upto != upper or window.visibility:
                elsewhere.append(window)
            else:
                found[window.room_id] = _timeline(held.get(window.room_id, _NONE), limit, allows)
        if elsewhere:
            found.update(await self.database.timelines(elsewhere, limit))
        return found

    async def current_state(self, room_ids: Sequence[str]) -> dict[str, list[Event]]:
        return await self.database.current_state(room_ids)

    async def state_changes(self, gaps: Sequence[tuple[str, int, int]]) -> dict[str, list[Event]]:
        """Gaps within the window from the window's events; any other from the database."""
        since, held = self.request.after, self.summary.events_by_room
        found: dict[str, list[Event]] = {}
        elsewhere: list[tuple[str, int, int]] = []
        for room_id, after, before in gaps:
            if after != since:
                elsewhere.append((room_id, after, before))
                continue
            latest: dict[tuple[str, str], Event] = {}
            for event in held.get(room_id, _NONE):
                if event.stream_position >= before:
                    break
                if event.state_key is not None:
                    latest[(event.type, event.state_key)] = event
            if latest:
                found[room_id] = sorted(latest.values(), key=lambda e: e.stream_position)
        if elsewhere:
            found.update(await self.database.state_changes(elsewhere))
        return found

    async def state_at(self, rooms: Sequence[tuple[str, int]]) -> dict[str, list[Event]]:
        return await self.database.state_at(rooms)

    async def members_at(
        self, wanted: Sequence[MembersWanted], known: KnownMember
    ) -> dict[str, list[Event]]:
        """From the window those who changed in it up to the position; of the others, only
        those the device does not hold from the database."""
        held = self.summary.events_by_room
        found: dict[str, list[Event]] = {}
        elsewhere: list[MembersWanted] = []
        for want in wanted:
            latest: dict[str, Event] = {}
            for event in held.get(want.room_id, _NONE):
                if event.stream_position > want.position:
                    break
                member = event.state_key
                if event.type == types.MEMBER and member is not None and member in want.user_ids:
                    latest[member] = event
            if latest:
                found[want.room_id] = list(latest.values())
            missing = [
                user_id
                for user_id in want.user_ids
                if user_id not in latest and not known(want.room_id, user_id)
            ]
            if missing:
                elsewhere.append(MembersWanted(want.room_id, want.position, missing))
        if elsewhere:
            for room_id, events in (await self.database.members_at(elsewhere, known)).items():
                found.setdefault(room_id, []).extend(events)
        return found

    async def receipts(self, room_ids: Collection[str]) -> dict[str, JsonDict]:
        receipts = self.summary.receipts
        if not receipts:
            return receipts
        return {room_id: content for room_id, content in receipts.items() if room_id in room_ids}

    async def account_data(self) -> AccountData:
        return _NO_ACCOUNT_DATA  # the user's own chain has nothing in the window

    async def facts(self, events: Sequence[Event], bundled: Collection[str]) -> EventFacts:
        stored = None
        by_id = self.summary.by_id
        if self.made_database is not None:  # events may have come from it
            outside = [event for event in events if event.event_id not in by_id]
            stored = await self.made_database.facts(outside, bundled) if outside else None
        bundles: dict[str, JsonDict] = {}
        if bundled:  # a limited timeline's or a new room's (sync/assembly.py)
            held = [e for e in events if e.event_id in bundled and e.event_id in by_id]
            bundles = await self.database.bundles(held) if held else bundles
        redacted_by = self.summary.redacted_by
        # Rare: a redaction in the window; its room's version shapes the redacted event.
        redacted_rooms = {e.room_id for e in events if e.event_id in redacted_by}
        versions = await self.database.room_versions(redacted_rooms) if redacted_rooms else {}
        return _HeldFacts(
            self.summary, self.request.user_id, self.request.device_id, stored, bundles, versions
        )


@dataclass(slots=True)
class _HeldFacts:
    """Facts of the window's events as the tail holds them (a redaction later than the
    window is not yet shown); `stored` answers for any other event."""

    summary: WindowSummary
    user_id: str
    device_id: str
    stored: StoredFacts | None
    bundles: Mapping[str, JsonDict]  # of the window's events that carry them
    versions: Mapping[str, RoomVersion]

    def redaction_of(self, event: Event) -> Event | None:
        if self.stored is not None and event.event_id not in self.summary.by_id:
            return self.stored.redaction_of(event)
        return self.summary.redacted_by.get(event.event_id)

    def room_version(self, event: Event) -> RoomVersion:
        if self.stored is not None and event.event_id not in self.summary.by_id:
            return self.stored.room_version(event)
        return self.versions.get(event.room_id, LEGACY)

    def transaction_id(self, event: Event) -> str | None:
        if event.sender != self.user_id:
            return None
        item = self.summary.by_id.get(event.event_id)
        if item is None:
            return self.stored.transaction_id(event) if self.stored is not None else None
        return item.txn_id if item.device_id == self.device_id else None

    def relations(self, event: Event) -> JsonDict | None:
        if self.stored is not None and event.event_id not in self.summary.by_id:
            return self.stored.relations(event)
        return self.bundles.get(event.event_id)

    def encoded(self, event: Event) -> EncodedEvent | None:
        item = self.summary.by_id.get(event.event_id)
        return item.encoded() if item is not None else None


def _timeline(events: list[Event], limit: int, allows: Callable[[Event], bool]) -> Timeline:
    """The timeline of a room's events in the window (the list is shared, read-only)."""
    shown = events if allows is everything else [event for event in events if allows(event)]
    if len(shown) <= limit:
        return Timeline(shown, False, len(shown) == len(events))
    return Timeline(shown[-limit:] if limit else [], True)
