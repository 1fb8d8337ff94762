"""Pruning old notifications, so push_notifications does not grow for ever.

GET /notifications lists what the push follower recorded in the last
`push.notifications_kept_days` (30 by default: Synapse keeps its push actions
about a month). What an older row still counts (a notification the user has
not read) moves to the backlog, so a room's badge does not change when its
rows go (store/push_pruning.py, migrations/0018_push_pruning.sql).

Runs in the push follower's `lead()`, so in one process at a time. Every
ROUND_SECONDS a round deletes the old rows in batches of at most BATCH_ROWS,
each its own short transaction, with a pause between two, until a batch finds
fewer: a first round on a large table takes a while, and never holds locks
long or keeps the database busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from homeserver.store import push_pruning

log = logging.getLogger(__name__)

ROUND_SECONDS = 3600.0
BATCH_ROWS = 2_000
BATCH_PAUSE_SECONDS = 0.5
DAY_MS = 86_400_000


class NotificationPruner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        kept_days: int = 30,
        clock: Callable[[], float] = time.time,
        pause_seconds: float = BATCH_PAUSE_SECONDS,
    ) -> None:
        self._pool = pool
        self._kept_ms = kept_days * DAY_MS
        self._clock = clock
        self._pause = pause_seconds

    async def run(self) -> None:
        """Prune every ROUND_SECONDS until cancelled."""
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning old notifications failed; trying again next round")
            await asyncio.sleep(ROUND_SECONDS)

    async def prune(self) -> tuple[int, int]:
        """One round: (notifications deleted, backlog rows deleted)."""
        before_ts = int(self._clock() * 1000) - self._kept_ms
        notifications = await self._in_batches(
            lambda conn: push_pruning.fold_notifications_before(conn, before_ts, BATCH_ROWS)
        )
        backlog = await self._in_batches(
            lambda conn: push_pruning.delete_read_backlog(conn, BATCH_ROWS)
        )
        if notifications or backlog:
            log.info(
                "pruned %d notifications older than %s and %d read backlog rows",
                notifications,
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(before_ts / 1000)),
                backlog,
            )
        return notifications, backlog

    async def _in_batches(self, batch: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with self._pool.acquire() as conn:
                done = await batch(conn)
            total += done
            if done < BATCH_ROWS:
                return total
            await asyncio.sleep(self._pause)
