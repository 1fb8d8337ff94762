"""What a channel is to a client: GET /_linkchat/v1/channels/{roomId}.

A channel is an ordinary room whose m.room.create has `type:
com.linkchat.channel`; its rules are its power levels (channels/presets.py).
Nothing here writes: posting is an ordinary send, one event whatever the
number of subscribers, and subscribers are the room's joined members.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.roles.ladder import Role, RoleLadder
from homeserver.rooms.power_levels import PowerLevels
from homeserver.store import events as event_store
from homeserver.store import groups as group_store
from homeserver.store import rooms as room_store

# Namespaced (not an M_ code): the room exists but is not a channel.
NOT_A_CHANNEL = "LINKCHAT_NOT_A_CHANNEL"


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    room_id: str
    name: str | None
    topic: str | None
    subscriber_count: int
    your_role: Role | None
    public: bool


@dataclass(eq=False)
class ChannelService:
    pool: asyncpg.Pool
    ladder: RoleLadder

    async def info(self, user_id: str, room_id: str) -> ChannelInfo:
        """A public channel is described to anyone; a private one to its members and invitees."""
        async with self.pool.acquire() as conn:
            summary = await group_store.room_summary(conn, room_id)
            if summary is None:
                raise not_found("Unknown room.")
            if summary.room_type != types.CHANNEL_ROOM_TYPE:
                raise MatrixError(404, NOT_A_CHANNEL, "This room is not a channel.")
            state = {
                event_type: await room_store.state_event(conn, room_id, event_type, "")
                for event_type in (
                    types.CREATE,
                    types.JOIN_RULES,
                    types.POWER_LEVELS,
                    types.NAME,
                    types.TOPIC,
                )
            }
            current = await room_store.membership(conn, room_id, user_id)
            membership = current.membership if current is not None else None
            public = _text(state[types.JOIN_RULES], "join_rule") == "public"
            if not public and membership not in ("join", "invite"):
                raise forbidden("This channel is private.")
            described = [e for e in (state[types.NAME], state[types.TOPIC]) if e is not None]
            redacted = await event_store.redactions_of(conn, [e.event_id for e in described])
            subscribers = await group_store.joined_count(conn, room_id)
        levels = PowerLevels.of_state(state[types.CREATE], state[types.POWER_LEVELS])

        def shown(event_type: str, key: str) -> str | None:
            event = state[event_type]
            return None if event is None or event.event_id in redacted else _text(event, key)

        return ChannelInfo(
            room_id=room_id,
            name=shown(types.NAME, "name"),
            topic=shown(types.TOPIC, "topic"),
            subscriber_count=subscribers,
            your_role=(
                self.ladder.role_of(levels.user_level(user_id)) if membership == "join" else None
            ),
            public=public,
        )


def _text(event: Event | None, key: str) -> str | None:
    value = event.content.get(key) if event is not None else None
    return value if isinstance(value, str) else None
