"""Media for server admins: quarantine (no longer served to anyone) and deletion.

Both are facts of the moderation chain, appended with their audit records: a
quarantine is `com.linkchat.admin.media_quarantine` (projected into
`quarantined_media`, which every download and thumbnail consults through
store/media.media()); a deletion is `com.linkchat.admin.media_deletion`, which
removes the file's record, after which its bytes and thumbnails are removed from
disk (a crash in between leaves only unreachable bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import invalid_param, not_found
from homeserver.events import types
from homeserver.media.storage import MediaStore
from homeserver.store import media as media_store


@dataclass(eq=False)
class MediaAdmin:
    pool: asyncpg.Pool
    trail: AuditTrail
    store: MediaStore
    server_name: str

    async def _known(self, server_name: str, media_id: str) -> None:
        """404 unless the file is one of ours that exists (quarantined or not)."""
        if server_name != self.server_name:
            # Not federated: no other server's media is ever held here.
            raise not_found("Media not found: this server holds no remote media.")
        async with self.pool.acquire() as conn:
            if await media_store.media(conn, media_id, quarantined=True) is None:
                raise not_found("Media not found")

    async def quarantine(
        self, admin: str, server_name: str, media_id: str, quarantined: bool, reason: str | None
    ) -> None:
        await self._known(server_name, media_id)
        await self.trail.record(
            admin,
            "media.quarantine" if quarantined else "media.unquarantine",
            target=f"mxc://{server_name}/{media_id}",
            reason=reason,
            facts=[
                self.trail.fact(
                    admin, types.MEDIA_QUARANTINE, {"quarantined": quarantined}, state_key=media_id
                )
            ],
        )

    async def delete(self, admin: str, server_name: str, media_id: str, reason: str | None) -> None:
        if server_name != self.server_name:
            raise invalid_param("Can only delete local media")
        await self._known(server_name, media_id)
        await self.trail.record(
            admin,
            "media.delete",
            target=f"mxc://{server_name}/{media_id}",
            reason=reason,
            facts=[
                self.trail.fact(admin, types.MEDIA_DELETION, {"deleted": True}, state_key=media_id)
            ],
        )
        await self.store.remove_with_thumbnails(media_id)
