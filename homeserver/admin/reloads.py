"""A process's in-memory copy of an admin projection, kept current in every process.

What the rate limiter asks on every limited request (who is an admin, who has an
override) must answer from memory, yet follow facts committed through any
process. So each process loads the projection at start, and again whenever a
bus message on the copy's channel says an admin changed it, or the bus is back
after it may have lost one. The process that made the change reloads at once and
then announces it, so its own next request already sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from homeserver.bus.base import Bus

log = logging.getLogger(__name__)


class ProjectionCopy:
    def __init__(self, bus: Bus, channel: str, load: Callable[[], Awaitable[None]]) -> None:
        self._bus = bus
        self._channel = channel
        self._load = load
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        bus.subscribe(channel, lambda _message: self._changed.set())
        bus.on_resumed(self._changed.set)

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._follow(), name=f"reload-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def changed(self, message: str) -> None:
        """After a fact changed the projection: reload here, then tell every other process."""
        await self._load()
        await self._bus.publish(self._channel, message)

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._load()
            except (OSError, asyncpg.PostgresError):
                log.exception("%s not reloaded; trying again", self._channel)
                await asyncio.sleep(1.0)
                self._changed.set()
