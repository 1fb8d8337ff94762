"""rooms.invite: each room the user was invited to, with the state a client needs to
show the invite (the spec's stripped state); not invites from users they ignore."""

from __future__ import annotations

from homeserver.events import types
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.response import inviter

# State a client needs to show an invite.
INVITE_STATE_TYPES = (
    types.CREATE,
    types.JOIN_RULES,
    types.NAME,
    "m.room.avatar",
    types.CANONICAL_ALIAS,
    "m.room.encryption",
    types.TOPIC,
)


async def write_invites(sync: SyncAssembly) -> None:
    invited = sync.memberships.invited
    if not invited:
        return
    states = await sync.source.current_state([m.room_id for m in invited])
    for membership in invited:
        stripped = [
            {
                "type": e.type,
                "state_key": e.state_key,
                "content": dict(e.content),
                "sender": e.sender,
            }
            for e in states.get(membership.room_id, [])
            if e.type in INVITE_STATE_TYPES or e.event_id == membership.event_id
        ]
        room = {"invite_state": {"events": stripped}}
        if inviter(room, sync.request.user_id) not in sync.request.options.ignored:
            sync.invite[membership.room_id] = room
