"""The notification bus: small messages between the parts of one server, across processes.

Messages are hints (a stream position, a revoked token), never data a reader
cannot recompute from PostgreSQL; a subscriber may see its own messages back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[str], None]


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler(message)` for every message on `channel` (from any process)."""
        ...

    async def publish(self, channel: str, message: str) -> None: ...
