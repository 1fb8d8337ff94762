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
from homeserver.sync.tokens import pagination_token
from homeserver.sync.window import Timeline, TimelineWindow

_EMPTY = Timeline([], False)


async def write_rooms(sync: SyncAssembly) -> None:
    source, options, after, upper = (
        sync.source,
        sync.request.options,
        sync.request.after,
        sync.upper,
    )
    rooms = sync.memberships = await source.memberships()
    fresh = [room_id for room_id in rooms.joined if room_id in rooms.fresh] if rooms.fresh else []
    stayed: Collection[str] = (
        [room_id for room_id in rooms.joined if room_id not in rooms.fresh]
        if rooms.fresh
        else rooms.joined
    )
    active = await source.rooms_with_events(stayed) if after is not None and stayed else []
    windows = [
        TimelineWindow(room_id, 0, upper, visibility=True, joined_at=rooms.joined[room_id])
        for room_id in fresh
    ]
    windows += [TimelineWindow(room_id, after or 0, upper) for room_id in active]
    windows += [
        TimelineWindow(m.room_id, after or 0, m.stream_position, visibility=True)
        for m in rooms.left
    ]
    timelines = await source.timelines(windows, options.timeline_limit)
    current = await source.current_state(fresh) if fresh else {}
    gaps = [
        (room_id, after or 0, timeline.events[0].stream_position)
        for room_id in active
        if (timeline := timelines.get(room_id, _EMPTY)).limited and timeline.events
    ]
    gap_state = await source.state_changes(gaps) if gaps else {}
    for room_id in [*fresh, *active]:
        timeline = timelines.get(room_id, _EMPTY)
        shown = _shown_timeline(sync, timeline)
        if room_id in rooms.fresh:
            in_timeline = {event.event_id for event in shown}
            state = [e for e in current.get(room_id, []) if e.event_id not in in_timeline]
        else:
            state = gap_state.get(room_id, [])
        if state:
            state = [event for event in state if options.state_allows(event)]
        if state and options.lazy_load_members:
            senders = {event.sender for event in shown} | {sync.request.user_id}
            state = [e for e in state if e.type != types.MEMBER or e.state_key in senders]
        room = sync.joined_room(room_id)
        _write_timeline(sync, room, timeline, shown, first_after=upper)
        sync.serve_later(room["state"], "events", state)
        if room_id in rooms.fresh or _has_member_event(timeline.events, state):
            sync.members_changed.add(room_id)
    if rooms.left:
        await _write_left(sync, timelines)


async def _write_left(sync: SyncAssembly, timelines: dict[str, Timeline]) -> None:
    left = sync.memberships.left
    shown = {m.room_id: _shown_timeline(sync, timelines.get(m.room_id, _EMPTY)) for m in left}
    # Their state as of the start of what is shown (the leave itself if nothing is).
    starts = {
        m.room_id: (
            shown[m.room_id][0].stream_position if shown[m.room_id] else m.stream_position + 1
        )
        for m in left
    }
    states = await sync.source.state_at([(room_id, start - 1) for room_id, start in starts.items()])
    for membership in left:
        room_id = membership.room_id
        room: JsonDict = {"timeline": {}, "state": {}, "account_data": {"events": []}}
        _write_timeline(
            sync,
            room,
            timelines.get(room_id, _EMPTY),
            shown[room_id],
            first_after=membership.stream_position,
        )
        state = [e for e in states.get(room_id, []) if sync.request.options.state_allows(e)]
        sync.serve_later(room["state"], "events", state)
        sync.leave[room_id] = room


def _shown_timeline(sync: SyncAssembly, timeline: Timeline) -> list[Event]:
    allows = sync.request.options.timeline_allows
    return [event for event in timeline.events if allows(event)]


def _write_timeline(
    sync: SyncAssembly, room: JsonDict, timeline: Timeline, shown: list[Event], first_after: int
) -> None:
    """The room's `timeline`: `shown`, and where to paginate back from (the gap before
    its first event; `first_after` when it shows none)."""
    first = shown[0].stream_position if shown else first_after + 1
    room["timeline"] = {
        "events": [],
        "limited": timeline.limited,
        "prev_batch": pagination_token(first - 1),
    }
    sync.serve_later(room["timeline"], "events", shown)


def _has_member_event(*events: Iterable[Event]) -> bool:
    return any(event.type == types.MEMBER for some in events for event in some)
