"""Token buckets: the pure arithmetic, and the Protocol every store of buckets follows.

A bucket holds up to `burst` tokens and refills at `per_second`; an action
costs tokens (one request, or a number of bytes). A bucket never seen, or
idle long enough to be full again, is simply absent: stores may forget full
buckets at any time without changing an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Float dust: after waiting exactly the advertised time a client must pass.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Limit:
    """A sustained rate and the burst allowed above it."""

    per_second: float
    burst: float


@dataclass(frozen=True, slots=True)
class Level:
    """What a bucket held (`tokens`, negative when in debt) at clock reading `at` (seconds)."""

    tokens: float
    at: float


def tokens_now(level: Level | None, limit: Limit, now: float) -> float:
    """The bucket's tokens at `now`: what it held plus the refill since, at most `burst`."""
    if level is None:
        return limit.burst
    elapsed = max(0.0, now - level.at)
    return min(limit.burst, level.tokens + elapsed * limit.per_second)


def take(
    level: Level | None, limit: Limit, cost: float, now: float, *, force: bool = False
) -> tuple[Level, float]:
    """Take `cost` tokens at `now`.

    Returns the new level and 0.0 when taken; the level unchanged (refilled to
    `now`) and the seconds until the tokens would be there when not. A cost
    above the burst needs a full bucket, so one big action always gets through
    eventually. `force` takes the tokens whatever the bucket holds, going into
    debt (at most one burst's worth) for costs known only afterwards; a
    negative cost gives tokens back.
    """
    tokens = tokens_now(level, limit, now)
    if not force:
        cost = min(cost, limit.burst)
        if tokens + _EPSILON < cost:
            return Level(tokens, now), (cost - tokens) / limit.per_second
    tokens = min(limit.burst, max(-limit.burst, tokens - cost))
    return Level(tokens, now), 0.0


def full_at(level: Level, limit: Limit) -> float:
    """The clock reading at which the bucket is full again (and may be forgotten)."""
    return level.at + (limit.burst - level.tokens) / limit.per_second


class StoreUnavailable(Exception):
    """A shared store of buckets (Redis, PostgreSQL) could not answer."""


class Buckets(Protocol):
    """Where the buckets live. `name` identifies one bucket (action and key)."""

    async def take(self, name: str, limit: Limit, cost: float, *, force: bool = False) -> float:
        """Take `cost` tokens (see `take`); 0.0 when taken, else seconds to wait."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
