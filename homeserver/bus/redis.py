"""The Redis pub/sub bus: several server processes over one PostgreSQL behave as one server.

The client is the server's one Redis client (built in app.py, shared with
typing and presence); the bus does not close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from homeserver.bus.base import Handler
from homeserver.bus.local import deliver

log = logging.getLogger(__name__)


class RedisBus:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"linkchat:{namespace}:"
        self._handlers: dict[str, list[Handler]] = {}
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        await self._pubsub.subscribe(*(self._prefix + c for c in self._handlers) or ["_"])
        self._reader = asyncio.create_task(self._read(), name="redis-bus")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Subscribe before start(); channels are fixed for the life of the bus."""
        self._handlers.setdefault(channel, []).append(handler)

    async def publish(self, channel: str, message: str) -> None:
        await self._redis.publish(self._prefix + channel, message)

    async def _read(self) -> None:
        while True:
            try:
                async for item in self._pubsub.listen():
                    channel = _text(item["channel"])[len(self._prefix) :]
                    deliver(self._handlers.get(channel, ()), _text(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus connection lost; resubscribing")
                await asyncio.sleep(1)


def _text(value: object) -> str:
    """A channel or message as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
