"""Users' own rate limits (Synapse's override_ratelimit admin API), in every process.

An override is a fact of the moderation chain (com.linkchat.admin.ratelimit_override),
projected into `ratelimit_overrides`. Every process loads the projection into its
rate limiter (`ExemptUsers`) at start, and again whenever a bus message says an
admin changed it, or the bus is back after it may have lost one; so an override
holds on every process as soon as it is committed and announced, and after any
restart.

`messages_per_second` 0 means not limited at all (as Synapse); otherwise the user
gets that rate and burst instead of the configured ones for what they do
(ratelimit.limiter.OVERRIDABLE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.bus.base import Bus
from homeserver.events import types
from homeserver.ratelimit.buckets import Limit
from homeserver.ratelimit.limiter import ExemptUsers
from homeserver.store import admin as admin_store

log = logging.getLogger(__name__)

CHANNEL = "ratelimit.overrides"


class RateLimitOverrides:
    def __init__(
        self, pool: asyncpg.Pool, trail: AuditTrail, exemptions: ExemptUsers, bus: Bus
    ) -> None:
        self._pool = pool
        self._trail = trail
        self._exemptions = exemptions
        self._bus = bus
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        bus.subscribe(CHANNEL, lambda _message: self._changed.set())
        bus.on_resumed(self._changed.set)

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._follow(), name="ratelimit-overrides")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.reload()
            except (OSError, asyncpg.PostgresError):
                log.exception("rate limit overrides not reloaded; trying again")
                await asyncio.sleep(1.0)
                self._changed.set()

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
        await self.reload()
        await self._bus.publish(CHANNEL, user_id)
