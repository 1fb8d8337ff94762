"""The notification bus: small messages between the parts of one server, across processes.

Messages are hints (a stream position, a revoked token), never data a reader
cannot recompute from PostgreSQL; a subscriber may see its own messages back.
A bus between processes can lose messages while it is disconnected (Redis or
PostgreSQL restarting): `publish` then drops them rather than fail its caller,
`connected` says so, and once it is back every `on_resumed` callback runs, so
subscribers catch up from the log and drop what they cached.

Three buses: `LocalBus` (one process), `RedisBus`, and `PostgresBus`
(LISTEN/NOTIFY, for several processes without Redis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[str], None]


class Bus(Protocol):
    connected: bool
    dropped: int  # messages that could not be published

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler(message)` for every message on `channel` (from any process)."""
        ...

    def on_resumed(self, callback: Callable[[], None]) -> None:
        """Call `callback()` each time the bus is back after messages may have been lost."""
        ...

    async def publish(self, channel: str, message: str) -> None: ...
