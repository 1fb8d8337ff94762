"""Buckets in Redis, shared by every process of the server: one Lua script per check.

The script reads a bucket, refills it by Redis's own clock (so processes on
machines whose clocks disagree still agree on every bucket), takes the cost or
answers how long to wait, and stores the bucket with an expiry at the moment
it is full again: an idle bucket costs Redis nothing.

Checks are group-committed like appends: the checks that arrive while one
script call is in flight go together in the next, one script call for all
of them. A single check is one round trip (resp.ScriptConnection, about
16 µs of CPU, where redis-py took 95); under load even that is shared.

When Redis cannot be reached the check falls back to buckets in this process
rather than letting everything through: a login brute-forcer should not gain
from Redis being down (perhaps because of them). Each process then enforces
the limits on its own, so a client spreading requests over N processes gets
up to N times its budget until Redis is back. Redis is tried again after
RETRY_SECONDS; the outage and the recovery are logged once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from homeserver.ratelimit.buckets import Limit, StoreUnavailable
from homeserver.ratelimit.local import LocalBuckets
from homeserver.ratelimit.resp import Reply, ScriptConnection

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# A Redis that hangs must not hang every limited request with it.
TIMEOUT_SECONDS = 1.0
# Checks in one script call, at most.
MAX_BATCH = 512
# Checks waiting for the call in flight, at most.
MAX_WAITING = 10_000

# KEYS: the buckets. ARGV: per_second, burst, cost, force ("1") or not ("0"),
# four for each key. A bucket's value is "<tokens> <seconds>"; absent means
# full. Returns, for each key in order, 0 when its cost was taken, else the
# milliseconds until it could be (at least 1). Mirrors buckets.take; a key
# named twice sees its first take.
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local waits = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local cost = tonumber(ARGV[4 * i - 1])
  local tokens = burst
  local stored = redis.call('GET', key)
  if stored then
    local held, at = string.match(stored, '^(%S+) (%S+)$')
    tokens = math.min(burst, tonumber(held) + math.max(0, now - tonumber(at)) * rate)
  end
  local wait = 0
  if ARGV[4 * i] ~= '1' then
    cost = math.min(cost, burst)
    if tokens + 1e-9 < cost then
      wait = math.max(1, math.ceil((cost - tokens) / rate * 1000))
    end
  end
  if wait == 0 then
    tokens = math.min(burst, math.max(-burst, tokens - cost))
    local full_in_ms = math.ceil((burst - tokens) / rate * 1000)
    if full_in_ms > 0 then
      redis.call('SET', key, string.format('%.17g %.6f', tokens, now), 'PX', full_in_ms)
    else
      redis.call('DEL', key)
    end
  end
  waits[i] = wait
end
return waits
"""


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    limit: Limit
    cost: float
    force: bool


# A check waiting for the script call in flight, and where its answer goes.
_Waiting = tuple[_Check, "asyncio.Future[float]"]


class TakeScript(Protocol):
    """Runs the take of a batch where the buckets are shared: keys, and four
    arguments per key (per_second, burst, cost, force); a wait in ms per key.
    Raises StoreUnavailable when the store cannot answer."""

    async def run(self, keys: Sequence[str], args: Sequence[str]) -> Reply: ...

    async def close(self) -> None: ...


class RedisBuckets:
    """Buckets shared by every process: in Redis, or in another shared store
    whose `script` takes a batch the same way (ratelimit/postgres.py)."""

    def __init__(
        self,
        url: str,
        namespace: str,
        fallback: LocalBuckets | None = None,
        *,
        script: TakeScript | None = None,
        store_name: str = "Redis",
    ) -> None:
        self._redis: TakeScript = script or ScriptConnection(url, _TAKE, TIMEOUT_SECONDS)
        self._store = store_name
        self._prefix = f"linkchat:{namespace}:ratelimit:"
        self._fallback = fallback or LocalBuckets()
        # monotonic time before which Redis is not tried again; 0.0 while it answers.
        self._down_until = 0.0
        # A script call is in flight (one at a time: one connection); checks wait.
        self._busy = False
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._redis.close()

    def key(self, name: str) -> str:
        """The Redis key of bucket `name`."""
        return self._prefix + name

    async def take(self, name: str, limit: Limit, cost: float, *, force: bool = False) -> float:
        if self._down_until and time.monotonic() < self._down_until:
            return self._fallback.take_now(name, limit, cost, force=force)
        check = _Check(name, limit, cost, force)
        if self._busy and len(self._waiting) >= MAX_WAITING:
            # Bounded: past this many checks waiting for the shared store, this
            # process answers on its own rather than queue without end.
            return self._fallback.take_now(name, limit, cost, force=force)
        if self._busy:
            answer: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._waiting.append((check, answer))
            return await answer
        # Nothing in flight: this check goes now, from this task (no task of its
        # own to start and switch to: a third of a lone check's cost).
        self._busy = True
        try:
            [wait] = await self._take_batch([check])
        finally:
            if self._waiting:
                self._sender = asyncio.create_task(self._send(), name="ratelimit-redis")
            else:
                self._busy = False
        return wait

    async def _send(self) -> None:
        """Send the waiting checks, one script call at a time, until none wait."""
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                waits = await self._take_batch([check for check, _ in batch])
                for (_, answer), wait in zip(batch, waits, strict=True):
                    if not answer.done():  # its request may have been cancelled
                        answer.set_result(wait)
                batch = []
        except Exception as error:  # a bug, not Redis being away: the requests see it
            self._fail([*batch, *self._waiting], error)
        except BaseException:
            self._fail([*batch, *self._waiting], RuntimeError("rate limiter closed"))
            raise
        finally:
            self._sender = None
            self._busy = False

    def _fail(self, waiting: list[_Waiting], error: Exception) -> None:
        for _, answer in waiting:
            if not answer.done():
                answer.set_exception(error)
        self._waiting = []

    async def _take_batch(self, batch: list[_Check]) -> list[float]:
        if not (self._down_until and time.monotonic() < self._down_until):
            keys = [self._prefix + check.name for check in batch]
            args: list[str] = []
            for check in batch:
                limit = check.limit
                args += [repr(limit.per_second), repr(limit.burst), repr(check.cost)]
                args.append("1" if check.force else "0")
            try:
                reply = await self._redis.run(keys, args)
                waits_ms = (
                    [wait for wait in reply if isinstance(wait, int)]
                    if isinstance(reply, list)
                    else []
                )
                if len(waits_ms) != len(batch):
                    raise StoreUnavailable(f"unexpected reply {reply!r:.80}")
            except StoreUnavailable as error:
                if not self._down_until:
                    log.warning(
                        "rate limits: %s unreachable (%s); each process limits on its own"
                        " until it is back",
                        self._store,
                        error,
                    )
                self._down_until = time.monotonic() + RETRY_SECONDS
            else:
                if self._down_until:
                    log.warning(
                        "rate limits: %s reachable again; limits are shared again", self._store
                    )
                    self._down_until = 0.0
                return [wait_ms / 1000 for wait_ms in waits_ms]
        return [
            self._fallback.take_now(check.name, check.limit, check.cost, force=check.force)
            for check in batch
        ]
