"""Timelines read from the database, filled up to the sync's limit past what the timeline
filter and history visibility leave out.

Each round reads, for every room still short, the newest events of its window the
filter's types, senders and `contains_url` keep (the database applies them), the
user may see, and the rest of the filter (its rooms, the ignored senders) lets
through; a room whose round came back full but short of the limit reads on further
back. As Synapse (`_load_filtered_recents`): a first read of `limit + 1`, then reads
of `max(2 * limit, 10)`, five rounds at most, after which the timeline says it is
`limited` (there may be more), and a client paginates on from its `prev_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homeserver.events.model import Event
from homeserver.rooms.access import RoomAccess, room_accesses, visible_events
from homeserver.store import sync as sync_store
from homeserver.sync.window import SyncRequest, Timeline, TimelineWindow

MAX_ROUNDS = 5


async def filled_timelines(
    conn: asyncpg.Connection, request: SyncRequest, windows: Sequence[TimelineWindow], limit: int
) -> dict[str, Timeline]:
    options = request.options
    chosen, allows = options.timeline_filter, options.timeline_allows
    selection = chosen.selection() if chosen is not None else None
    found: dict[str, Timeline] = {}
    todo: list[TimelineWindow] = []
    for window in windows:
        if chosen is not None and not chosen.allows_room(window.room_id):
            found[window.room_id] = Timeline([], False)
        else:
            todo.append(window)
    shown: dict[str, list[Event]] = {w.room_id: [] for w in todo}
    # Whether every event read so far was shown (nothing was left out before the first).
    whole = dict.fromkeys(shown, True)
    upto = {w.room_id: w.upto for w in todo}
    joined_at = {w.room_id: w.joined_at for w in todo if w.joined_at is not None}
    accesses: dict[str, RoomAccess] = {}
    batch = limit + 1
    for round_ in range(MAX_ROUNDS):
        if round_:
            todo = await _within_sight(conn, request.user_id, todo, upto, accesses)
            for window in [w for w in todo if upto[w.room_id] <= w.after]:
                found[window.room_id] = Timeline(shown[window.room_id], False)
            todo = [w for w in todo if upto[w.room_id] > w.after]
        if not todo:
            break
        read = await sync_store.timelines(
            conn, [(w.room_id, w.after, upto[w.room_id]) for w in todo], batch, selection
        )
        if round_ == 0:
            seen = await visible_events(
                conn,
                request.user_id,
                {w.room_id: read.get(w.room_id, []) for w in todo if w.visibility},
                joined_at,
            )
        else:
            seen = {
                w.room_id: accesses[w.room_id].filter(read.get(w.room_id, []))
                for w in todo
                if w.visibility
            }
        short: list[TimelineWindow] = []
        for window in todo:
            room_id = window.room_id
            events = read.get(room_id, [])
            kept = [event for event in seen.get(room_id, events) if allows(event)]
            whole[room_id] = whole[room_id] and len(kept) == len(events)
            shown[room_id][:0] = kept
            if len(shown[room_id]) > limit or len(events) < batch:
                more = len(shown[room_id]) > limit
                latest = shown[room_id][-limit:] if limit else []
                found[room_id] = Timeline(
                    latest, more, whole[room_id] and not more and chosen is None
                )
            else:
                upto[room_id] = events[0].stream_position - 1
                short.append(window)
        todo = short
        batch = max(2 * limit, 10)
    for window in todo:  # still short after the last round: there may be more
        found[window.room_id] = Timeline(shown[window.room_id], True)
    return found


async def _within_sight(
    conn: asyncpg.Connection,
    user_id: str,
    todo: list[TimelineWindow],
    upto: dict[str, int],
    accesses: dict[str, RoomAccess],
) -> list[TimelineWindow]:
    """The windows to read on, each from the last position before `upto` the user may
    see (a room joined under `joined` visibility reads none of its hidden past); a
    window with none left gets an `upto` at its start."""
    watched = [w.room_id for w in todo if w.visibility and w.room_id not in accesses]
    if watched:
        accesses.update(await room_accesses(conn, user_id, watched))
    for window in todo:
        if window.visibility:
            room_id = window.room_id
            ranges = accesses[room_id].history.visible_ranges(window.after + 1, upto[room_id])
            upto[room_id] = ranges[-1][1] if ranges else window.after
    return todo
