"""Shadow-banning a user (the admin API's POST/DELETE /_synapse/admin/v1/users/{userId}/shadow_ban).

A ban or an unban is a `com.linkchat.shadow_ban` fact of the moderation chain
(events/content/shadow_bans.py), appended with its audit record
(`user.shadow_ban`). What a ban does is rooms/shadow_bans.py's. The fact is a
StateEdit of the user's previous one, so two admins acting at once cannot
leave an unban naming a ban that is no longer the one in force.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.store import accounts as account_store


@dataclass(eq=False)
class ShadowBanService:
    pool: asyncpg.Pool
    trail: AuditTrail
    server_name: str

    async def set_shadow_banned(
        self, admin: str, user_id: str, banned: bool, reason: str | None
    ) -> None:
        """Shadow-ban `user_id` (`banned`) or end their ban; doing what is already so
        appends nothing."""
        if user_id.partition(":")[2] != self.server_name:
            raise invalid_param("Only local users can be shadow-banned.")
        async with self.pool.acquire() as conn:
            if not await account_store.user_exists(conn, user_id):
                raise not_found("User not found")

        def edit(current: Event | None) -> JsonDict | None:
            in_force = current is not None and current.content.get("shadow_banned") is True
            if in_force == banned:
                return None
            content: JsonDict = {"shadow_banned": banned}
            if not banned and current is not None:
                content["banned_at"] = current.stream_position
            return content

        await self.trail.record_edit(
            admin,
            "user.shadow_ban",
            user_id,
            edit,
            event_type=types.SHADOW_BAN,
            reason=reason,
            details={"shadow_banned": banned},
            what="The shadow-ban",
        )
