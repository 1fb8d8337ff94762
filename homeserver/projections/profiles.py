"""Profiles, from the account chains; the public rooms the user directory shows, from rooms.

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
    if types.is_room_chain(event.room_id) and event.type == types.JOIN_RULES:
        key = {"room_id": event.room_id}
        if event.content.get("join_rule") == "public":
            return [Upsert(USER_DIRECTORY_PUBLIC_ROOMS, key)]
        return [Delete(USER_DIRECTORY_PUBLIC_ROOMS, key)]
    return []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
