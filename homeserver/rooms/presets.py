"""createRoom presets: the initial state each preset gives a room."""

from __future__ import annotations

from typing import Any

PRESETS = ("private_chat", "public_chat", "trusted_private_chat")


def preset_state(preset: str) -> dict[str, dict[str, Any]]:
    """Content of join_rules, history_visibility and guest_access for a preset."""
    join_rule = "public" if preset == "public_chat" else "invite"
    guest_access = "forbidden" if preset == "public_chat" else "can_join"
    return {
        "m.room.join_rules": {"join_rule": join_rule},
        "m.room.history_visibility": {"history_visibility": "shared"},
        "m.room.guest_access": {"guest_access": guest_access},
    }


def default_power_levels(creator: str, preset: str, invitees: list[str]) -> dict[str, Any]:
    users = {creator: 100}
    if preset == "trusted_private_chat":
        users.update({invitee: 100 for invitee in invitees})
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
        "historical": 100,
        "notifications": {"room": 50},
    }
