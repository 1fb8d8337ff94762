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
"""

from __future__ import annotations

from collections.abc import Iterable

from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.options import everything
from homeserver.sync.tokens import pagination_token
from homeserver.sync.window import Timeline, TimelineWindow


async def write_rooms(sync: SyncAssembly) -> None:
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
    if fresh:
        current = await source.current_state(fresh)
        for room_id in fresh:
            _write_joined(sync, room_id, timelines[room_id], current.get(room_id, []), fresh=True)
    # Left rooms the user was in at `since` are changes since, like the rooms stayed in.
    ongoing = dict(active)
    ongoing.update(
        (m.room_id, timelines[m.room_id]) for m in rooms.left if m.room_id not in rooms.left_fresh
    )
    gaps = [
        (room_id, after or 0, _start(timeline, _upto(sync, room_id)))
        for room_id, timeline in ongoing.items()
        if not timeline.gapless
    ]
    gap_state = await source.state_changes(gaps) if gaps else {}
    for room_id, timeline in active.items():
        _write_joined(sync, room_id, timeline, gap_state.get(room_id, []), fresh=False)
    if rooms.left:
        await _write_left(sync, timelines, gap_state)


def _upto(sync: SyncAssembly, room_id: str) -> int:
    """Where the room's window ends: the user's leave in a room left, else the sync's end."""
    for membership in sync.memberships.left:
        if membership.room_id == room_id:
            return membership.stream_position
    return sync.upper


def _start(timeline: Timeline, upto: int) -> int:
    """The position of the first event shown (just past the window if none is)."""
    return timeline.events[0].stream_position if timeline.events else upto + 1


def _write_joined(
    sync: SyncAssembly, room_id: str, timeline: Timeline, state: list[Event], *, fresh: bool
) -> None:
    """A joined room's timeline and state: for a room new to the user its state before
    the timeline shown, else the state changed between `since` and the timeline."""
    options = sync.request.options
    shown = timeline.events
    if fresh and state:
        in_timeline = {event.event_id for event in shown}
        state = [event for event in state if event.event_id not in in_timeline]
        if options.lazy_load_members:
            senders = {event.sender for event in shown} | {sync.request.user_id}
            state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
    if state and options.state_allows is not everything:
        state = [event for event in state if options.state_allows(event)]
    room = sync.join[room_id] = {
        "timeline": _timeline(sync, timeline, first_after=sync.upper),
        "state": {},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
    }
    sync.serve_later(room["state"], "events", state)
    if fresh or _has_member_event(timeline.events, state):
        sync.members_changed.add(room_id)


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
        timeline = _timeline(sync, timelines[room_id], first_after=membership.stream_position)
        state = states.get(room_id, []) if room_id in starts else gap_state.get(room_id, [])
        room: JsonDict = {"timeline": timeline, "state": {}, "account_data": {"events": []}}
        sync.serve_later(room["state"], "events", [e for e in state if allows(e)])
        sync.leave[room_id] = room


def _timeline(sync: SyncAssembly, timeline: Timeline, first_after: int) -> JsonDict:
    """A room's `timeline`: its events, and where to paginate back from (the gap before
    its first event; `first_after` when it shows none)."""
    shown = timeline.events
    first = shown[0].stream_position if shown else first_after + 1
    served: JsonDict = {
        "events": shown,
        "limited": timeline.limited,
        "prev_batch": pagination_token(first - 1),
    }
    sync.serve_later(served, "events", shown)
    return served


def _has_member_event(*events: Iterable[Event]) -> bool:
    for some in events:
        for event in some:
            if event.type == types.MEMBER:
                return True
    return False
