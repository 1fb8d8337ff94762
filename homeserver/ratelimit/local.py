"""Buckets in this process's memory: one process, or the fallback while Redis is away."""

from __future__ import annotations

import time
from collections.abc import Callable

from homeserver.ratelimit.buckets import Level, Limit, full_at, take

# Forget full buckets when the table reaches this size (and then twice what is left),
# so a flood of one-off keys (IP addresses, user names) cannot grow it without bound.
_FIRST_SWEEP = 4096


class LocalBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # name -> (level, clock reading at which it is full again)
        self._levels: dict[str, tuple[Level, float]] = {}
        self._sweep_at = _FIRST_SWEEP

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def take(self, name: str, limit: Limit, cost: float, *, force: bool = False) -> float:
        return self.take_now(name, limit, cost, force=force)

    def take_now(self, name: str, limit: Limit, cost: float, *, force: bool = False) -> float:
        """`take` without a coroutine, for callers that are not async."""
        now = self._clock()
        stored = self._levels.get(name)
        level, wait = take(stored[0] if stored else None, limit, cost, now, force=force)
        if wait:
            return wait
        self._levels[name] = (level, full_at(level, limit))
        if len(self._levels) >= self._sweep_at:
            self._sweep(now)
        return 0.0

    def __len__(self) -> int:
        return len(self._levels)

    def _sweep(self, now: float) -> None:
        self._levels = {name: kept for name, kept in self._levels.items() if kept[1] > now}
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self._levels))
