"""Who is a server admin: the users of the config's `admins`, and those an admin flagged.

The one place every rule that favours admins asks: the admin API, the alias
rules (api/directory.py) and the rate limiter's exemption.

A flag is a fact of the moderation chain (com.linkchat.admin.server_admin),
projected into `server_admins`, and `audit replay` rebuilds it. `is_admin`
reads the projection each time, so a flag given or taken away holds for the
admin API and the alias rules in every process as soon as it is committed;
neither is a hot path. The rate limiter asks on every limited request, so it
answers from memory: its copy (ratelimit.limiter.ExemptUsers) is reloaded in
every process as admin/reloads.py says, as the override_ratelimit decisions are.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.admin.reloads import ProjectionCopy
from homeserver.bus.base import Bus
from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events import types
from homeserver.ratelimit.limiter import ExemptUsers
from homeserver.store import accounts as account_store
from homeserver.store import admin as admin_store

CHANNEL = "admin.server_admins"

# The one refusal of every admin endpoint, whatever the request names: it says
# nothing about whether the user, room or media exists.
NOT_ADMIN = "You are not a server admin"


class ServerAdmins:
    def __init__(
        self,
        pool: asyncpg.Pool,
        configured: Iterable[str],
        trail: AuditTrail,
        server_name: str,
        exemptions: ExemptUsers,
        bus: Bus,
    ) -> None:
        self._pool = pool
        # The configured admins, as a list for queries that mark every admin.
        self.configured = sorted(configured)
        self._configured = frozenset(self.configured)
        self._trail = trail
        self._server_name = server_name
        self._exemptions = exemptions
        # This process's copy for the rate limiter; app.py starts and stops it.
        self.copy = ProjectionCopy(bus, CHANNEL, self.reload)

    async def reload(self) -> None:
        """Hand every admin, as the projection has them, to this process's rate limiter."""
        async with self._pool.acquire() as conn:
            flagged = await admin_store.all_flagged_admins(conn)
        self._exemptions.set_admins(self._configured | flagged)

    def is_configured(self, user_id: str) -> bool:
        return user_id in self._configured

    async def is_admin(self, user_id: str) -> bool:
        if user_id in self._configured:
            return True
        async with self._pool.acquire() as conn:
            return await admin_store.is_flagged_admin(conn, user_id)

    async def user_exists(self, user_id: str) -> bool:
        async with self._pool.acquire() as conn:
            return await account_store.user_exists(conn, user_id)

    async def admins_among(self, user_ids: list[str]) -> set[str]:
        """Which of `user_ids` are server admins."""
        async with self._pool.acquire() as conn:
            flagged = await admin_store.flagged_admins(conn, user_ids)
        return flagged | (self._configured & set(user_ids))

    async def require_admin(self, user_id: str) -> None:
        """403 M_FORBIDDEN unless `user_id` is a server admin."""
        if not await self.is_admin(user_id):
            raise forbidden(NOT_ADMIN)

    async def set_admin(self, admin: str, user_id: str, flag: bool, reason: str | None) -> None:
        """`admin` makes `user_id` a server admin (`flag`) or no longer one; recorded."""
        _, _, server = user_id.partition(":")
        if server != self._server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", "Only local users can be admins of this homeserver"
            )
        if not flag and user_id == admin:
            raise MatrixError(400, "M_INVALID_PARAM", "You may not demote yourself.")
        if not flag and user_id in self._configured:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"{user_id} is an admin by the server's configuration (admins).",
            )
        if not await self.user_exists(user_id):
            raise not_found("User not found")
        await self._trail.record(
            admin,
            "user.admin",
            target=user_id,
            reason=reason,
            details={"admin": flag},
            facts=[self._trail.fact(admin, types.SERVER_ADMIN, {"admin": flag}, state_key=user_id)],
        )
        await self.copy.changed(user_id)
