"""The mutes in force, from the rooms' `com.linkchat.mute` state (homeserver/moderation).

One row per muted user and room while the latest mute fact says muted; a lifted
one (`{}`) removes it. The expiry follower reads the rows with an `expires_ts` to
rebuild its timers when it takes over.
"""

from __future__ import annotations

from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.content.mutes import MuteContent, muted_user, parse_mute
from homeserver.events.model import Event
from homeserver.projections.changes import ROOM_MUTES, Change, Delete, Upsert


def changes(event: Event) -> list[Change]:
    if event.type != types.MUTE or not types.is_room_chain(event.room_id):
        return []
    if (user_id := muted_user(event.state_key)) is None:
        return []
    key = {"room_id": event.room_id, "user_id": user_id}
    mute = mute_of(event)
    if mute is None:
        return [Delete(ROOM_MUTES, key)]
    return [
        Upsert(
            ROOM_MUTES,
            {
                **key,
                "event_id": event.event_id,
                "muted_by": event.sender,
                "level": mute.level,
                "previous_level": mute.previous_level,
                "muted_ts": event.origin_server_ts,
                "expires_ts": mute.expires_ts,
                "reason": mute.reason,
                "stream_position": event.stream_position,
            },
        )
    ]


def mute_of(event: Event) -> MuteContent | None:
    """The mute a mute fact records; None when it lifts one (or, never logged, is junk)."""
    try:
        return parse_mute(event.content)
    except MatrixError:
        return None
