"""The Redis pub/sub bus: several server processes over one PostgreSQL behave as one server.

The client is the server's one Redis client (built in app.py, shared with
typing and presence); the bus does not close it. When Redis goes away the
reader resubscribes with backoff and, once back, runs the `on_resumed`
callbacks: what was published meanwhile is lost, and subscribers catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from homeserver.bus.base import Handler
from homeserver.bus.local import deliver

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0


class RedisBus:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"linkchat:{namespace}:"
        self._handlers: dict[str, list[Handler]] = {}
        self._resumed: list[Callable[[], None]] = []
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self.connected = False
        self.dropped = 0
        self._publish_failing = False

    async def start(self) -> None:
        await self._subscribe()
        self.connected = True
        self._reader = asyncio.create_task(self._read(), name="redis-bus")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Subscribe before start(); channels are fixed for the life of the bus."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_resumed(self, callback: Callable[[], None]) -> None:
        self._resumed.append(callback)

    async def publish(self, channel: str, message: str) -> None:
        try:
            await self._redis.publish(self._prefix + channel, message)
        except (RedisError, OSError) as error:
            self.dropped += 1
            if not self._publish_failing:  # once per outage, not once per message
                log.warning("bus: could not publish on Redis (%s); dropping hints", error)
            self._publish_failing = True
            return
        self._publish_failing = False

    async def _subscribe(self) -> None:
        await self._pubsub.subscribe(*(self._prefix + c for c in self._handlers) or ["_"])

    async def _read(self) -> None:
        while True:
            try:
                async for item in self._pubsub.listen():
                    channel = _text(item["channel"])[len(self._prefix) :]
                    deliver(self._handlers.get(channel, ()), _text(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.connected = False
                log.warning("bus: Redis connection lost (%s); resubscribing", error)
            await self._reconnect()

    async def _reconnect(self) -> None:
        backoff = 0.1
        while True:
            await asyncio.sleep(backoff)
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await self._subscribe()
            except (RedisError, OSError):
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            self.connected = True
            log.warning("bus: Redis reachable again; catching up from the log")
            for callback in self._resumed:
                try:
                    callback()
                except Exception:
                    log.exception("bus resume callback failed")
            return


def _text(value: object) -> str:
    """A channel or message as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
