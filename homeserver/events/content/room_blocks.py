"""What a room block fact holds: `com.linkchat.room.block`, state of the moderation chain
keyed by the room ID, `{"block": bool}`, sent by the admin who (un)blocked it; and a
purge, `com.linkchat.room.purged` keyed alike, `{}`, sent by the admin who deleted it.
JSON Schemas: spec/events/com.linkchat.room.block.json, com.linkchat.room.purged.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from homeserver.events import types
from homeserver.events.content.parsing import parsed
from homeserver.events.model import Event


class RoomBlockContent(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    block: bool


def parse_room_block(content: Mapping[str, Any]) -> RoomBlockContent:
    return parsed(RoomBlockContent, content)


def room_block_of(event: Event) -> tuple[str, bool] | None:
    """(room ID, blocked) of a room block fact; None for any other event."""
    if (
        event.type != types.ROOM_BLOCK
        or event.state_key is None
        or not types.is_moderation_chain(event.room_id)
    ):
        return None
    return event.state_key, event.content.get("block") is True


def room_purged_of(event: Event) -> str | None:
    """The room a purge fact closes; None for any other event."""
    if (
        event.type != types.ROOM_PURGED
        or event.state_key is None
        or not types.is_moderation_chain(event.room_id)
    ):
        return None
    return event.state_key
