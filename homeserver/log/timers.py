"""The timer loop of a follower's `lead` (log/followers.py): fire what is due, sleep until
the next deadline, again, for as long as the process holds the lease.

Command expiry (device_control/expiry.py) and mute expiry
(moderation/mute_expiry.py) keep their deadlines in `Deadlines`, rebuilt from a
projection when they take the lease; it and this loop are what they share.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from homeserver.alarm import Alarm

log = logging.getLogger(__name__)

# The longest sleep, so a change of the wall clock is noticed.
MAX_SLEEP_MS = 30_000
# After a failed round (the database away), the next one.
RETRY_SECONDS = 1.0

K = TypeVar("K")
V = TypeVar("V")


class Deadlines(Generic[K, V]):
    """What waits for its time (ms since the epoch), by key, with a value: the latest
    `watch` of a key is the one that counts. `wake` rings when a deadline comes before
    every other, for `run_timers` to sleep on."""

    def __init__(self) -> None:
        self.wake = Alarm()
        # (due, key, watch number); an entry that is no longer its key's watch in
        # `_waiting` (forgotten, or watched again since) is skipped.
        self._heap: list[tuple[int, K, int]] = []
        self._waiting: dict[K, tuple[int, V]] = {}  # key -> (watch number, value)
        self._numbers = itertools.count()

    def __contains__(self, key: K) -> bool:
        return key in self._waiting

    def get(self, key: K) -> V | None:
        waiting = self._waiting.get(key)
        return waiting[1] if waiting is not None else None

    def watch(self, due: int, key: K, value: V) -> None:
        first = self.earliest()
        number = next(self._numbers)
        heapq.heappush(self._heap, (due, key, number))
        self._waiting[key] = (number, value)
        if first is None or due < first:
            self.wake.ring()

    def forget(self, key: K) -> None:
        self._waiting.pop(key, None)

    def earliest(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int, at_most: int) -> list[tuple[int, K, V]]:
        """Up to `at_most` of the watches due by `now_ms`, earliest first, forgotten."""
        due: list[tuple[int, K, V]] = []
        while self._heap and self._heap[0][0] <= now_ms and len(due) < at_most:
            when, key, number = heapq.heappop(self._heap)
            waiting = self._waiting.get(key)
            if waiting is not None and waiting[0] == number:
                del self._waiting[key]
                due.append((when, key, waiting[1]))
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._waiting.clear()


async def run_timers(
    deadlines: Deadlines[K, V],
    fire: Callable[[list[tuple[int, K, V]]], Awaitable[None]],
    at_most: int,
    now_ms: Callable[[], int],
    what: str,
) -> None:
    """Forever: `fire` what is due, `at_most` at a time, then sleep until the earliest
    deadline or until `deadlines.wake` rings (an earlier one came). A failed round is
    logged and tried again, unless the task is being cancelled (the lease was lost)."""
    while True:
        try:
            now = now_ms()
            while due := deadlines.pop_due(now, at_most):
                await fire(due)
        except Exception:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError from None  # lost the lease meanwhile
            log.exception("%s failed; trying again", what)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        wait_ms = MAX_SLEEP_MS
        if (first := deadlines.earliest()) is not None:
            wait_ms = min(wait_ms, first - now_ms())
        await deadlines.wake.sleep(max(wait_ms, 0) / 1000)
