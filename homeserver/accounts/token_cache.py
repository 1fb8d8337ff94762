"""Access tokens recently seen, so most requests skip a database round trip.

Revocations (logout, device deletion) are published on the bus and evicted in
every process; the time-to-live bounds how long a missed message could matter.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedOwner:
    user_id: str
    device_id: str
    valid_until_ms: int | None = None


class TokenCache:
    def __init__(self, max_entries: int = 100_000, ttl_seconds: float = 300.0) -> None:
        self._entries: OrderedDict[str, tuple[CachedOwner, float]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl = ttl_seconds

    def get(self, token_hash: str) -> CachedOwner | None:
        found = self._entries.get(token_hash)
        if found is None:
            return None
        owner, expires = found
        if expires < time.monotonic():
            del self._entries[token_hash]
            return None
        return owner

    def put(self, token_hash: str, owner: CachedOwner) -> None:
        self._entries[token_hash] = (owner, time.monotonic() + self._ttl)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def evict(self, token_hashes: list[str]) -> None:
        for token_hash in token_hashes:
            self._entries.pop(token_hash, None)
