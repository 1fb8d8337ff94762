"""Bundled aggregations (`unsigned.m.relations`): what clients of Matrix 1.4 and later expect
on every event served: the latest edit (`m.replace`, a full event) and the thread summary
(`m.thread`: `latest_event`, `count`, `current_user_participated`).

One function, called wherever events are served in client form (rooms/rendering.py:
/messages, /context, /event, /relations, the threads list, and /sync from either window
source, for the timelines sync/assembly.py says carry them), reading what a page needs
in two queries, whatever its length.
Redacted events get none, and redacted edits and replies do not count, nor those the user
may not see as sent by one shadow-banned then (rooms/shadow_bans.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg

from homeserver.events.client_format import client_event
from homeserver.events.model import Event, JsonDict
from homeserver.store import relations as relation_store


async def bundled_aggregations(
    conn: asyncpg.Connection,
    events: Sequence[Event],
    user_id: str | None,
    redacted: Collection[str] = (),
    *,
    include_room_id: bool = True,
) -> dict[str, JsonDict]:
    """Event ID -> its `m.relations`, for those of `events` that have any."""
    shown = [event for event in events if event.event_id not in redacted]
    if not shown:
        return {}
    edits = await relation_store.latest_edits(
        conn, [(event.event_id, event.sender) for event in shown if not event.is_state], user_id
    )
    threads = await relation_store.thread_summaries(
        conn, [event.event_id for event in shown], user_id
    )
    found: dict[str, JsonDict] = {}
    for event in shown:
        relations: JsonDict = {}
        edit = edits.get(event.event_id)
        if edit is not None:
            relations["m.replace"] = client_event(edit, include_room_id=include_room_id)
        thread = threads.get(event.event_id)
        if thread is not None:
            relations["m.thread"] = {
                "latest_event": client_event(thread.latest, include_room_id=include_room_id),
                "count": thread.count,
                "current_user_participated": user_id is not None
                and (user_id in thread.participants or event.sender == user_id),
            }
        if relations:
            found[event.event_id] = relations
    return found
