"""Waiting for a follower to reach a position, in whichever process runs it.

The unread counts of /sync wait for the push follower after a user changed
their push rules (push/counts.py). The process holding a follower's lease
records its position in PostgreSQL with each batch (log/followers.py) and then
says so here: waiters in this process are woken at once, and the bus carries
the news to the other processes. A waiter reads the position from PostgreSQL
itself, so what arrives here is a hint, like every bus message: one lost costs
a wait until the waiter's time runs out, never a wrong answer. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from homeserver.alarm import Alarm
from homeserver.bus.base import Bus

log = logging.getLogger(__name__)

CHANNEL = "follower_positions"


class FollowerPositions:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._known: dict[str, int] = {}
        self._waiters: dict[str, set[tuple[int, Alarm]]] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        bus.subscribe(CHANNEL, self._on_message)

    def recorded(self, name: str, position: int) -> None:
        """This process recorded `position` for the follower `name` (committed)."""
        self._reached(name, position)
        task = asyncio.create_task(self._publish(f"{position} {name}"))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    @contextlib.contextmanager
    def watching(self, name: str, position: int) -> Iterator[Alarm]:
        """An alarm rung whenever the follower `name` is heard to have recorded
        `position` or beyond (already rung if it was heard before). Enter it before
        reading the position, so a change in between is not missed."""
        entry = (position, Alarm())
        self._waiters.setdefault(name, set()).add(entry)
        if self._known.get(name, -1) >= position:
            entry[1].ring()
        try:
            yield entry[1]
        finally:
            waiters = self._waiters.get(name)
            if waiters is not None:
                waiters.discard(entry)
                if not waiters:
                    del self._waiters[name]

    async def close(self) -> None:
        for task in list(self._publishing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _reached(self, name: str, position: int) -> None:
        if position > self._known.get(name, -1):
            self._known[name] = position
        for target, alarm in self._waiters.get(name, ()):
            if position >= target:
                alarm.ring()

    def _on_message(self, message: str) -> None:
        position, _, name = message.partition(" ")
        if position.isdigit() and name:
            self._reached(name, int(position))

    async def _publish(self, message: str) -> None:
        try:
            await self._bus.publish(CHANNEL, message)
        except Exception as error:
            # The waiters of other processes wait until their time runs out.
            log.warning("could not publish a follower position: %r", error)
