"""Users' own rate limits (Synapse's override_ratelimit admin API), in every process.

An override is a fact of the moderation chain (com.linkchat.admin.ratelimit_override),
projected into `ratelimit_overrides`. Every process keeps the projection in its
rate limiter (`ExemptUsers`), reloaded as admin/reloads.py says; so an override
holds on every process as soon as it is committed and announced, and after any
restart.

`messages_per_second` 0 means not limited at all (as Synapse); otherwise the user
gets that rate and burst instead of the configured ones for what they do
(ratelimit.limiter.OVERRIDABLE).
"""

from __future__ import annotations

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.admin.reloads import ProjectionCopy
from homeserver.bus.base import Bus
from homeserver.events import types
from homeserver.ratelimit.buckets import Limit
from homeserver.ratelimit.limiter import ExemptUsers
from homeserver.store import admin as admin_store

CHANNEL = "ratelimit.overrides"


class RateLimitOverrides:
    def __init__(
        self, pool: asyncpg.Pool, trail: AuditTrail, exemptions: ExemptUsers, bus: Bus
    ) -> None:
        self._pool = pool
        self._trail = trail
        self._exemptions = exemptions
        # This process's copy for the rate limiter; app.py starts and stops it.
        self.copy = ProjectionCopy(bus, CHANNEL, self.reload)

    async def reload(self) -> None:
        """Hand the overrides as the projection has them to this process's rate limiter."""
        async with self._pool.acquire() as conn:
            overrides = await admin_store.ratelimit_overrides(conn)
        self._exemptions.set_overridden(user for user, (rate, _) in overrides.items() if not rate)
        self._exemptions.set_own_limits(
            {user: Limit(rate, max(burst, 1)) for user, (rate, burst) in overrides.items() if rate}
        )

    async def override(self, user_id: str) -> tuple[int, int] | None:
        async with self._pool.acquire() as conn:
            return (await admin_store.ratelimit_overrides(conn)).get(user_id)

    async def set(
        self, admin: str, user_id: str, override: tuple[int, int] | None, reason: str | None
    ) -> None:
        """Give `user_id` their own (rate, burst), or the configured ones again (None)."""
        content = (
            {}
            if override is None
            else {"messages_per_second": override[0], "burst_count": override[1]}
        )
        await self._trail.record(
            admin,
            "user.ratelimit.delete" if override is None else "user.ratelimit.set",
            target=user_id,
            reason=reason,
            details=content or None,
            facts=[self._trail.fact(admin, types.RATELIMIT_OVERRIDE, content, state_key=user_id)],
        )
        await self.copy.changed(user_id)
