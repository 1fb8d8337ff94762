"""The in-process bus: one server process, no Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable

from homeserver.bus.base import Handler

log = logging.getLogger(__name__)


class LocalBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self.connected = True
        self.dropped = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_resumed(self, callback: Callable[[], None]) -> None:
        return None  # never loses a message

    async def publish(self, channel: str, message: str) -> None:
        deliver(self._handlers.get(channel, ()), message)


def deliver(handlers: object, message: str) -> None:
    for handler in handlers:  # type: ignore[attr-defined]
        try:
            handler(message)
        except Exception:
            log.exception("bus handler failed")
