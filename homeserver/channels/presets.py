"""A broadcast channel's power levels: admins post, subscribers read and react.

`channel_power_levels` turns the levels a createRoom preset would give a room
into a channel's. RoomService applies it when m.room.create content has
`type: com.linkchat.channel` (wired in app.py), before the creator's own
`power_level_content_override`, which still wins. Everything is enforced by
the ordinary Matrix rules (rooms/auth.py) against these levels:

- messages and every other timeline event need `admin` (events_default);
- `m.reaction` needs only `member`, and so does `m.room.redaction`: a
  subscriber may redact an event of their own (their reaction), while
  removing someone else's still needs the redact level, `moderator`;
- state (name, topic, join rules, power levels...) needs `admin`; the
  room-ending and server-level state (tombstone, server ACL, encryption)
  keeps needing `owner`;
- kick, ban, redact and invite need `moderator`; @room needs `admin`.
"""

from __future__ import annotations

from typing import Any

from homeserver.events import types
from homeserver.roles.ladder import RoleLadder


def channel_power_levels(preset_levels: dict[str, Any], ladder: RoleLadder) -> dict[str, Any]:
    """A channel's m.room.power_levels content from the one its preset gives."""
    users = preset_levels.get("users", {})
    # The preset names the creator (and, for trusted_private_chat, invitees) at
    # 100, the owner level at most: they are the channel's owners.
    owners = {user: ladder.owner for user, level in users.items() if level >= ladder.owner}
    return {
        **preset_levels,
        "users": {**users, **owners},
        "users_default": ladder.member,
        "events_default": ladder.admin,
        "state_default": ladder.admin,
        "events": {
            types.POWER_LEVELS: ladder.admin,
            types.HISTORY_VISIBILITY: ladder.admin,
            "m.room.tombstone": ladder.owner,
            "m.room.server_acl": ladder.owner,
            "m.room.encryption": ladder.owner,
            types.REACTION: ladder.member,
            types.REDACTION: ladder.member,
        },
        "ban": ladder.moderator,
        "kick": ladder.moderator,
        "redact": ladder.moderator,
        "invite": ladder.moderator,
        "historical": ladder.owner,
        "notifications": {"room": ladder.admin},
    }
