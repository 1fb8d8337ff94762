"""presence: m.presence of the users the user shares a room with, changed since `since`
(everyone's on an initial sync), as the filter's `presence` section allows; and, changed
or not, of everyone in a room the user just joined and of whoever just joined or was
invited to one of theirs (as Synapse: the client was not told their presence yet)."""

from __future__ import annotations

from homeserver.events import types
from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.sources import PresenceSource

_MET = ("join", "invite")


class Presence:
    def __init__(self, presence: PresenceSource | None) -> None:
        self._presence = presence

    async def __call__(self, sync: SyncAssembly) -> None:
        request, options, since = sync.request, sync.request.options, sync.request.since
        if self._presence is None or not options.wants_presence:
            return
        rooms_joined: list[str] = []
        users_joined: set[str] = set()
        if since is not None and not sync.whole:
            rooms_joined = [room_id for room_id in sync.join if room_id in sync.memberships.fresh]
            for event in sync.unserved_events():
                if (
                    event.type == types.MEMBER
                    and event.state_key != request.user_id
                    and event.room_id in sync.join
                    and event.content.get("membership") in _MET
                ):
                    users_joined.add(event.state_key or "")
        # When nothing changed, one comparison in the presence service.
        sync.presence, sync.presence_position = await self._presence.presence_for_sync(
            request.user_id,
            sync.joined,
            since.presence if since is not None else None,
            options.presence_allows,
            rooms_joined=rooms_joined,
            users_joined=users_joined,
            peeked=sync.memberships.peeked,
        )
