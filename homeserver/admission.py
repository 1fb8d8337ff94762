"""Admission: how many requests a process works on at once, long-polls aside.

An overloaded process that takes every request makes every one of them late:
each waits its turn on the one event loop behind all the others, and memory
grows with them. Past `limit` requests in progress, a new one is refused at
once with 503 and Retry-After, which costs a fraction of serving it, so the
requests taken are served at their normal latency. Long-polls and sync streams
mostly wait rather than work, and are bounded by connections instead; the
health check must answer whatever the load.

A count does not know how fast the machine is. With `max_lag_seconds` the
process also refuses while its event loop runs late by more than that (how
late a 50 ms timer fires: the time a request now waits before any of its code
runs), which adapts to the machine: a latency target rather than a count.
"""

from __future__ import annotations

import asyncio

# Requests that are not counted: they wait (long-polls, streams) or must always answer.
EXEMPT_SUFFIXES = ("/sync", "/sync/stream", "/health")


# How often the event loop's lateness is measured.
LAG_TICK_SECONDS = 0.05


class Admission:
    def __init__(self, limit: int, max_lag_seconds: float = 0.0) -> None:
        self.limit = limit
        self.max_lag = max_lag_seconds
        self.in_progress = 0
        self.refused = 0
        # How late the loop runs: rises at once, halves each tick it is on time.
        self.lag = 0.0

    async def watch_lag(self) -> None:
        """Measure the loop's lateness for as long as the process serves."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_TICK_SECONDS)
            late = loop.time() - started - LAG_TICK_SECONDS
            self.lag = max(late, self.lag / 2)

    @staticmethod
    def exempt(path: str) -> bool:
        return path.endswith(EXEMPT_SUFFIXES)

    def admit(self) -> bool:
        """Take a place, or say the process is full (and count the refusal)."""
        if self.in_progress >= self.limit or (self.max_lag and self.lag > self.max_lag):
            self.refused += 1
            return False
        self.in_progress += 1
        return True

    def leave(self) -> None:
        self.in_progress -= 1
