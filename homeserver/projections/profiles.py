"""Profiles, from the account chains; the public rooms the user directory shows, from rooms
(publicly joinable or world_readable: their members are in everyone's directory).

A user's profile row starts at registration (the `com.linkchat.account` fact):
display name = localpart, as Synapse gives a new user. Each `com.linkchat.profile`
fact of their chain then replaces it whole.
"""

from __future__ import annotations

from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections.changes import (
    PROFILES,
    USER_DIRECTORY_PUBLIC_ROOMS,
    Change,
    Delete,
    InsertIfAbsent,
    Upsert,
)


def changes(event: Event) -> list[Change]:
    if event.state_key != "":
        return []
    if types.is_account_chain(event.room_id):
        user_id = event.room_id
        if event.type == types.ACCOUNT:
            localpart = user_id[1:].partition(":")[0]
            return [
                InsertIfAbsent(
                    PROFILES, {"user_id": user_id, "displayname": localpart, "avatar_url": None}
                )
            ]
        if event.type == types.PROFILE:
            return [
                Upsert(
                    PROFILES,
                    {
                        "user_id": user_id,
                        "displayname": _text(event.content.get("displayname")),
                        "avatar_url": _text(event.content.get("avatar_url")),
                    },
                )
            ]
        return []
    if types.is_room_chain(event.room_id) and event.type in _PUBLIC_BY:
        field, value = _PUBLIC_BY[event.type]
        key = {"room_id": event.room_id, "reason": value}
        if event.content.get(field) == value:
            return [Upsert(USER_DIRECTORY_PUBLIC_ROOMS, key)]
        return [Delete(USER_DIRECTORY_PUBLIC_ROOMS, key)]
    return []


# What makes a room's members public in the user directory, as Synapse's
# (is_room_world_readable_or_publicly_joinable): state type -> (field, value), the value
# naming the reason in user_directory_public_rooms.
_PUBLIC_BY = {
    types.JOIN_RULES: ("join_rule", "public"),
    types.HISTORY_VISIBILITY: ("history_visibility", "world_readable"),
}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
