"""presence: m.presence of the users the user shares a room with, changed since `since`
(everyone's on an initial sync), as the filter's `presence` section allows."""

from __future__ import annotations

from homeserver.sync.assembly import SyncAssembly
from homeserver.sync.sources import PresenceSource


class Presence:
    def __init__(self, presence: PresenceSource | None) -> None:
        self._presence = presence

    async def __call__(self, sync: SyncAssembly) -> None:
        options, since = sync.request.options, sync.request.since
        if self._presence is None or not options.wants_presence:
            return
        # When nothing changed, one comparison in the presence service.
        sync.presence, sync.presence_position = await self._presence.presence_for_sync(
            sync.request.user_id,
            sync.joined,
            since.presence if since is not None else None,
            options.presence_allows,
        )
