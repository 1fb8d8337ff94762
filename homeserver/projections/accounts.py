"""Users, their devices and forgotten rooms, from the account chains; aliases."""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import (
    DEVICES,
    FORGOTTEN_ROOMS,
    ROOM_ALIASES,
    USERS,
    Change,
    Delete,
    Upsert,
)


def changes(event: Event) -> list[Change]:
    if event.state_key is None:
        return []
    if types.is_account_chain(event.room_id):
        return _account_changes(event)
    if types.is_alias_chain(event.room_id) and event.type == types.ALIAS:
        room_id = event.content.get("room_id")
        if isinstance(room_id, str):
            return [
                Upsert(
                    ROOM_ALIASES,
                    {"alias": event.room_id, "room_id": room_id, "creator": event.sender},
                )
            ]
        return [Delete(ROOM_ALIASES, {"alias": event.room_id})]
    return []


def _account_changes(event: Event) -> list[Change]:
    user_id = event.room_id
    content = event.content
    if event.type == types.ACCOUNT:
        kind = content.get("kind")
        return [
            Upsert(
                USERS,
                {
                    "user_id": user_id,
                    "created_ts": int(content.get("created_ts", event.origin_server_ts)),
                    "deactivated": content.get("deactivated") is True,
                    "kind": kind if isinstance(kind, str) else "user",
                },
            )
        ]
    if event.type == types.ACCOUNT_DEVICE:
        key = {"user_id": user_id, "device_id": event.state_key}
        if not content:
            return [Delete(DEVICES, key)]
        name = content.get("display_name")
        return [
            Upsert(
                DEVICES,
                {
                    **key,
                    "display_name": name if isinstance(name, str) else None,
                    "created_ts": int(content.get("created_ts", event.origin_server_ts)),
                },
            )
        ]
    if event.type == types.ACCOUNT_FORGOTTEN:
        key = {"user_id": user_id, "room_id": event.state_key}
        if content.get("forgotten") is True:
            return [Upsert(FORGOTTEN_ROOMS, {**key, "stream_position": event.stream_position})]
        return [Delete(FORGOTTEN_ROOMS, key)]
    return []
