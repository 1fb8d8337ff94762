"""The public room directory: which rooms are published, from their directory state event."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import ROOM_DIRECTORY, Change, Delete, Upsert

PUBLIC = "public"
PRIVATE = "private"


def visibility_of(content: object) -> str:
    """What a com.linkchat.room.directory content says; anything but "public" is private."""
    if isinstance(content, dict) and content.get("visibility") == PUBLIC:
        return PUBLIC
    return PRIVATE


def changes(event: Event) -> list[Change]:
    if (
        event.type != types.ROOM_DIRECTORY
        or event.state_key != ""
        or not types.is_room_chain(event.room_id)
    ):
        return []
    if visibility_of(event.content) == PUBLIC:
        row = {
            "room_id": event.room_id,
            "published_by": event.sender,
            "stream_position": event.stream_position,
        }
        return [Upsert(ROOM_DIRECTORY, row)]
    return [Delete(ROOM_DIRECTORY, {"room_id": event.room_id})]
