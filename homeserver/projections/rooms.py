"""Rooms, their current state and membership, and chain heads."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import (
    CHAIN_HEADS,
    CURRENT_STATE,
    ROOM_MEMBERS,
    ROOMS,
    Change,
    Upsert,
)


def changes(event: Event) -> list[Change]:
    result: list[Change] = [
        Upsert(
            CHAIN_HEADS,
            {
                "room_id": event.room_id,
                "event_id": event.event_id,
                "depth": event.depth,
                "stream_position": event.stream_position,
            },
        )
    ]
    if event.state_key is None:
        return result
    result.append(
        Upsert(
            CURRENT_STATE,
            {
                "room_id": event.room_id,
                "type": event.type,
                "state_key": event.state_key,
                "event_id": event.event_id,
            },
        )
    )
    if not types.is_room_chain(event.room_id):
        return result
    if event.type == types.CREATE:
        room_type = event.content.get("type")
        result.append(
            Upsert(
                ROOMS,
                {
                    "room_id": event.room_id,
                    "creator": event.sender,
                    "room_version": str(event.content.get("room_version", "1")),
                    "room_type": room_type if isinstance(room_type, str) else None,
                    "stream_position": event.stream_position,
                },
            )
        )
    elif event.type == types.MEMBER:
        membership = event.content.get("membership")
        result.append(
            Upsert(
                ROOM_MEMBERS,
                {
                    "room_id": event.room_id,
                    "user_id": event.state_key,
                    "membership": membership if isinstance(membership, str) else "leave",
                    "event_id": event.event_id,
                    "stream_position": event.stream_position,
                },
            )
        )
    return result
