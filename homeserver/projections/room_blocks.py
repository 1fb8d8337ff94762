"""Blocked and purged rooms, from the moderation chain's `com.linkchat.room.block` and
`com.linkchat.room.purged` facts."""

from __future__ import annotations

from homeserver.events.content.room_blocks import room_block_of, room_purged_of
from homeserver.events.model import Event
from homeserver.projections.changes import BLOCKED_ROOMS, PURGED_ROOMS, Change, Delete, Upsert


def changes(event: Event) -> list[Change]:
    if (purged := room_purged_of(event)) is not None:
        row = {
            "room_id": purged,
            "purged_by": event.sender,
            "stream_position": event.stream_position,
        }
        return [Upsert(PURGED_ROOMS, row)]
    block = room_block_of(event)
    if block is None:
        return []
    room_id, blocked = block
    if not blocked:
        return [Delete(BLOCKED_ROOMS, {"room_id": room_id})]
    row = {"room_id": room_id, "blocked_by": event.sender, "stream_position": event.stream_position}
    return [Upsert(BLOCKED_ROOMS, row)]
