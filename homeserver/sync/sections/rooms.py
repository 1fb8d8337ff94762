"""rooms.join and rooms.leave: each room's timeline and the state that goes with it.

Which rooms, and which window of each: a room new to the user (joined in the
window, or any on an initial or full-state sync) from its start, as history
visibility allows; a room the user stayed in, if it has events in the window,
from the window's start; a room left in the window up to the leave.

Its `state` is what the spec asks: "updates to the state, between the time
indicated by the since parameter, and the start of the timeline". For a room new
to the user that is all of it (its current state, less what the timeline shows);
for a room the user was in, each key changed between `since` and the first event
shown: nothing when the timeline shows its whole window, else what a burst of
messages (a `limited` timeline) or the timeline filter left out: members who
joined or left meanwhile, a new name or topic.

With `lazy_load_members` a room new to the user carries only the members of the
timeline's senders and the user's own; every room also carries the membership of
each sender in its timeline as of their first event there, unless this device
was sent it already (sync/lazy_members.py; `include_redundant_members` sends it
again). What changed in a gap is never left out, members included, as Synapse.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.lazy_members import LazyMembers
from homeserver.sync.options import everything
from homeserver.sync.tokens import pagination_token
from homeserver.sync.window import MembersWanted, Timeline, TimelineWindow


class Rooms:
    def __init__(self, lazy_members: LazyMembers) -> None:
        self._lazy = lazy_members

    async def __call__(self, sync: SyncAssembly) -> None:
        request, source, upper = sync.request, sync.source, sync.upper
        after, limit = request.after, request.options.timeline_limit
        rooms = sync.memberships = await source.memberships()
        fresh = [room_id for room_id in rooms.joined if room_id in rooms.fresh]
        stayed = [room_id for room_id in rooms.joined if room_id not in rooms.fresh]
        # The rooms the user stayed in that have events in the window.
        active = await source.new_events(stayed, limit) if after is not None and stayed else {}
        windows = [
            TimelineWindow(room_id, 0, upper, visibility=True, joined_at=rooms.joined[room_id])
            for room_id in fresh
        ]
        # Rooms peeked at (world_readable), as history visibility lets one who is not in
        # them see: whole on a first read, else what came since.
        windows += [
            TimelineWindow(room_id, 0 if sync.whole else (after or 0), upper, visibility=True)
            for room_id in rooms.peeked
        ]
        if rooms.peeked and sync.whole:
            fresh += rooms.peeked
        windows += [
            TimelineWindow(
                m.room_id,
                0 if m.room_id in rooms.left_fresh else (after or 0),
                m.stream_position,
                visibility=True,
            )
            for m in rooms.left
        ]
        timelines = await source.timelines(windows, limit) if windows else {}
        # Left rooms the user was in at `since` are changes since, like the rooms stayed in.
        ends = {room_id: upper for room_id in active}
        ends.update((m.room_id, m.stream_position) for m in rooms.left)
        ongoing = dict(active)
        ongoing.update(
            (m.room_id, timelines[m.room_id])
            for m in rooms.left
            if m.room_id not in rooms.left_fresh
        )
        peeked_since = [] if sync.whole else list(rooms.peeked)
        ongoing.update((room_id, timelines[room_id]) for room_id in peeked_since)
        ends.update((room_id, upper) for room_id in peeked_since)
        gaps = [
            (room_id, after or 0, _start(timeline, ends[room_id]))
            for room_id, timeline in ongoing.items()
            if not timeline.gapless
        ]
        gap_state = await source.state_changes(gaps) if gaps else {}
        if request.options.lazy_load_members:
            if after is None:
                self._lazy.forget(request.viewer)  # an initial sync: the device starts afresh
            senders = await self._sender_members(sync, ongoing, gap_state)
            for room_id, members in senders.items():
                gap_state[room_id] = gap_state.get(room_id, []) + members
        if fresh:
            current = await source.current_state(fresh)
            for room_id in fresh:
                state = _new_room_state(sync, timelines[room_id], current.get(room_id, []))
                _write_joined(sync, room_id, timelines[room_id], state, fresh=True)
        for room_id, timeline in active.items():
            _write_joined(sync, room_id, timeline, gap_state.get(room_id, []), fresh=False)
        for room_id in peeked_since:
            state = gap_state.get(room_id, [])
            _write_joined(sync, room_id, timelines[room_id], state, fresh=False)
        if rooms.left:
            await _write_left(sync, timelines, gap_state)
        if request.options.lazy_load_members or self._lazy.knows(request.viewer):
            self._remember(sync)

    async def _sender_members(
        self, sync: SyncAssembly, timelines: dict[str, Timeline], gap_state: dict[str, list[Event]]
    ) -> dict[str, list[Event]]:
        """Per room the user was in, the member events of its timeline's senders as of the
        first event shown, less those the gap's state carries and those the device holds."""
        request = sync.request
        device = request.viewer
        redundant = request.options.include_redundant_members
        wanted: list[MembersWanted] = []
        for room_id, timeline in timelines.items():
            if not timeline.events:
                continue
            changed = {e.state_key for e in gap_state.get(room_id, ()) if e.type == types.MEMBER}
            senders = {e.sender for e in timeline.events} - changed
            if senders:
                wanted.append(MembersWanted(room_id, timeline.events[0].stream_position, senders))
        return await self._lazy.to_send(sync.source, device, wanted, redundant=redundant)

    def _remember(self, sync: SyncAssembly) -> None:
        """Note the member events this device is sent; forget what it holds of members
        whose change it is not sent (a filter left it out)."""
        device = sync.request.viewer
        sent = list(sync.unserved_events())
        self._lazy.record(device, sent)
        held = sync.source.held
        if held is not None:
            ids = {event.event_id for event in sent}
            self._lazy.unsent(
                device,
                (
                    event
                    for events in held.events_by_room.values()
                    for event in events
                    if event.type == types.MEMBER and event.event_id not in ids
                ),
            )


def _start(timeline: Timeline, upto: int) -> int:
    """The position of the first event shown (just past the window if none is)."""
    return timeline.events[0].stream_position if timeline.events else upto + 1


def _new_room_state(sync: SyncAssembly, timeline: Timeline, state: list[Event]) -> list[Event]:
    """A room new to the user: its state less what the timeline shows, with lazy loading
    only the members of the timeline's senders and the user's own."""
    if not state:
        return state
    in_timeline = {event.event_id for event in timeline.events}
    state = [event for event in state if event.event_id not in in_timeline]
    if sync.request.options.lazy_load_members:
        senders = {event.sender for event in timeline.events} | {sync.request.user_id}
        state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
    return state


def _write_joined(
    sync: SyncAssembly, room_id: str, timeline: Timeline, state: list[Event], *, fresh: bool
) -> None:
    """A joined room's timeline and the state that goes with it."""
    options = sync.request.options
    if state and options.state_allows is not everything:
        state = [event for event in state if options.state_allows(event)]
    room = sync.join[room_id] = {
        "timeline": _timeline(sync, timeline, first_after=sync.upper, fresh=fresh),
        "state": {},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
    }
    sync.serve_later(room["state"], "events", state)
    if fresh or _names_anew(timeline.events, state):
        sync.summary_changed.add(room_id)


async def _write_left(
    sync: SyncAssembly, timelines: dict[str, Timeline], gap_state: dict[str, list[Event]]
) -> None:
    rooms = sync.memberships
    # A room new to the user: its state as of the start of what is shown (the leave
    # itself if nothing is).
    starts = {
        m.room_id: _start(timelines[m.room_id], m.stream_position)
        for m in rooms.left
        if m.room_id in rooms.left_fresh
    }
    states = await sync.source.state_at([(room_id, start - 1) for room_id, start in starts.items()])
    allows = sync.request.options.state_allows
    for membership in rooms.left:
        room_id = membership.room_id
        timeline = _timeline(
            sync,
            timelines[room_id],
            first_after=membership.stream_position,
            fresh=room_id in rooms.left_fresh,
        )
        if room_id in starts:
            state = _new_room_state(sync, timelines[room_id], states.get(room_id, []))
        else:
            state = gap_state.get(room_id, [])
        room: JsonDict = {"timeline": timeline, "state": {}, "account_data": {"events": []}}
        sync.serve_later(room["state"], "events", [e for e in state if allows(e)])
        sync.leave[room_id] = room


def _timeline(sync: SyncAssembly, timeline: Timeline, first_after: int, *, fresh: bool) -> JsonDict:
    """A room's `timeline`: its events, and where to paginate back from (the gap before
    its first event; `first_after` when it shows none). Its events carry their bundled
    aggregations when the client was not shown the room before or not all of it."""
    shown = timeline.events
    first = shown[0].stream_position if shown else first_after + 1
    served: JsonDict = {
        "events": shown,
        "limited": timeline.limited,
        "prev_batch": pagination_token(first - 1),
    }
    sync.serve_later(served, "events", shown, bundled=timeline.limited or fresh)
    return served


# What a room's summary follows: its members, and what decides whether it needs heroes.
_SUMMARY_TYPES = frozenset((types.MEMBER, types.NAME, types.CANONICAL_ALIAS))


def _names_anew(*events: Iterable[Event]) -> bool:
    """Whether the events change what the room's summary says."""
    for some in events:
        for event in some:
            if event.type in _SUMMARY_TYPES:
                return True
    return False
