"""rooms.join and rooms.leave: each room's timeline and the state that goes with it.

Which rooms, and which window of each: a room new to the user (joined in the
window, or any on an initial or full-state sync) from its start, as history
visibility allows, with its current state; a room the user stayed in, if it has
events in the window, with the state changed in the gap before its timeline
when that is cut short (limited); a room left in the window, up to the leave,
with its state as of its timeline's start.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

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
    fresh: list[str] = []
    stayed: Collection[str] = rooms.joined
    if rooms.fresh:
        fresh = [room_id for room_id in rooms.joined if room_id in rooms.fresh]
        stayed = [room_id for room_id in rooms.joined if room_id not in rooms.fresh]
    # The rooms the user stayed in that have events in the window.
    active = await source.new_events(stayed, limit) if after is not None and stayed else {}
    windows = [
        TimelineWindow(room_id, 0, upper, visibility=True, joined_at=rooms.joined[room_id])
        for room_id in fresh
    ]
    if rooms.left:
        windows += [
            TimelineWindow(m.room_id, after or 0, m.stream_position, visibility=True)
            for m in rooms.left
        ]
    timelines = await source.timelines(windows, limit) if windows else {}
    if fresh:
        current = await source.current_state(fresh)
        for room_id in fresh:
            _write_joined(sync, room_id, timelines[room_id], current.get(room_id, []), fresh=True)
    gaps = [
        (room_id, after or 0, timeline.events[0].stream_position)
        for room_id, timeline in active.items()
        if timeline.limited and timeline.events
    ]
    gap_state = await source.state_changes(gaps) if gaps else {}
    for room_id, timeline in active.items():
        _write_joined(sync, room_id, timeline, gap_state.get(room_id, []), fresh=False)
    if rooms.left:
        await _write_left(sync, timelines)


def _write_joined(
    sync: SyncAssembly, room_id: str, timeline: Timeline, state: list[Event], *, fresh: bool
) -> None:
    """A joined room's timeline and state: for a room new to the user its state before
    the timeline shown, else the state changed in the gap before it (if it is limited)."""
    options = sync.request.options
    shown = _shown_timeline(sync, timeline)
    if fresh and state:
        in_timeline = {event.event_id for event in shown}
        state = [event for event in state if event.event_id not in in_timeline]
    if state and options.state_allows is not everything:
        state = [event for event in state if options.state_allows(event)]
    if state and options.lazy_load_members:
        senders = {event.sender for event in shown} | {sync.request.user_id}
        state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
    room = sync.join[room_id] = {
        "timeline": _timeline(sync, timeline, shown, first_after=sync.upper),
        "state": {},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
    }
    sync.serve_later(room["state"], "events", state)
    if fresh or _has_member_event(timeline.events, state):
        sync.members_changed.add(room_id)


async def _write_left(sync: SyncAssembly, timelines: dict[str, Timeline]) -> None:
    left = sync.memberships.left
    shown = {m.room_id: _shown_timeline(sync, timelines[m.room_id]) for m in left}
    # Their state as of the start of what is shown (the leave itself if nothing is).
    starts = {
        m.room_id: (
            shown[m.room_id][0].stream_position if shown[m.room_id] else m.stream_position + 1
        )
        for m in left
    }
    states = await sync.source.state_at([(room_id, start - 1) for room_id, start in starts.items()])
    allows = sync.request.options.state_allows
    for membership in left:
        room_id = membership.room_id
        timeline = _timeline(
            sync, timelines[room_id], shown[room_id], first_after=membership.stream_position
        )
        room: JsonDict = {"timeline": timeline, "state": {}, "account_data": {"events": []}}
        sync.serve_later(room["state"], "events", [e for e in states.get(room_id, []) if allows(e)])
        sync.leave[room_id] = room


def _shown_timeline(sync: SyncAssembly, timeline: Timeline) -> list[Event]:
    allows = sync.request.options.timeline_allows
    if allows is everything:
        return timeline.events
    return [event for event in timeline.events if allows(event)]


def _timeline(
    sync: SyncAssembly, timeline: Timeline, shown: list[Event], first_after: int
) -> JsonDict:
    """A room's `timeline`: `shown`, and where to paginate back from (the gap before its
    first event; `first_after` when it shows none)."""
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
