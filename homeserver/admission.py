"""Admission: how many requests a process works on at once, long-polls aside.

An overloaded process that takes every request makes every one of them late:
each waits its turn on the one event loop behind all the others, and memory
grows with them. Past `limit` requests in progress, a new one is refused at
once with 503 and Retry-After, which costs a fraction of serving it, so the
requests taken are served at their normal latency. Long-polls and sync streams
mostly wait rather than work, and are bounded by connections instead; the
health check must answer whatever the load.
"""

from __future__ import annotations

# Requests that are not counted: they wait (long-polls, streams) or must always answer.
EXEMPT_SUFFIXES = ("/sync", "/sync/stream", "/health")


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_progress = 0
        self.refused = 0

    @staticmethod
    def exempt(path: str) -> bool:
        return path.endswith(EXEMPT_SUFFIXES)

    def admit(self) -> bool:
        """Take a place, or say the process is full (and count the refusal)."""
        if self.in_progress >= self.limit:
            self.refused += 1
            return False
        self.in_progress += 1
        return True

    def leave(self) -> None:
        self.in_progress -= 1
