"""Buckets in Redis, shared by every process of the server: one Lua script per check.

The script reads the bucket, refills it by Redis's own clock (so processes on
machines whose clocks disagree still agree on every bucket), takes the cost or
answers how long to wait, and stores the bucket with an expiry at the moment
it is full again: an idle bucket costs Redis nothing.

When Redis cannot be reached the check falls back to buckets in this process
rather than letting everything through: a login brute-forcer should not gain
from Redis being down (perhaps because of them). Each process then enforces
the limits on its own, so a client spreading requests over N processes gets
up to N times its budget until Redis is back. Redis is tried again after
RETRY_SECONDS; the outage and the recovery are logged once each.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from homeserver.ratelimit.buckets import Limit
from homeserver.ratelimit.local import LocalBuckets

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# A Redis that hangs must not hang every limited request with it.
TIMEOUT_SECONDS = 1.0

# KEYS[1]: the bucket. ARGV: per_second, burst, cost, force ("1") or not ("0").
# The value is "<tokens> <seconds>"; absent means full. Returns 0 when the cost
# was taken, else the milliseconds until it could be (at least 1). Mirrors
# buckets.take.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = burst
local stored = redis.call('GET', KEYS[1])
if stored then
  local held, at = string.match(stored, '^(%S+) (%S+)$')
  tokens = math.min(burst, tonumber(held) + math.max(0, now - tonumber(at)) * rate)
end
if ARGV[4] ~= '1' then
  cost = math.min(cost, burst)
  if tokens + 1e-9 < cost then
    return math.max(1, math.ceil((cost - tokens) / rate * 1000))
  end
end
tokens = math.min(burst, math.max(-burst, tokens - cost))
local full_in_ms = math.ceil((burst - tokens) / rate * 1000)
if full_in_ms > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g %.6f', tokens, now), 'PX', full_in_ms)
else
  redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisBuckets:
    def __init__(self, url: str, namespace: str, fallback: LocalBuckets | None = None) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self._prefix = f"linkchat:{namespace}:ratelimit:"
        self._script = self._redis.register_script(_TAKE)
        self._fallback = fallback or LocalBuckets()
        # monotonic time before which Redis is not tried again; 0.0 while it answers.
        self._down_until = 0.0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self._redis.aclose()

    def key(self, name: str) -> str:
        """The Redis key of bucket `name`."""
        return self._prefix + name

    async def take(self, name: str, limit: Limit, cost: float, *, force: bool = False) -> float:
        if self._down_until:
            if time.monotonic() < self._down_until:
                return self._fallback.take_now(name, limit, cost, force=force)
        try:
            wait_ms = await self._script(
                keys=[self._prefix + name],
                args=[repr(limit.per_second), repr(limit.burst), repr(cost), int(force)],
            )
        except (RedisError, OSError) as error:
            if not self._down_until:
                log.warning(
                    "rate limits: Redis unreachable (%s); each process limits on its own"
                    " until it is back",
                    error,
                )
            self._down_until = time.monotonic() + RETRY_SECONDS
            return self._fallback.take_now(name, limit, cost, force=force)
        if self._down_until:
            log.warning("rate limits: Redis reachable again; limits are shared again")
            self._down_until = 0.0
        return int(wait_ms) / 1000
