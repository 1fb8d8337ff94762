"""Who is typing in which room: ephemeral state with a serial that sync tokens carry.

Typing is not in the log (DESIGN: truly ephemeral signals). The state is a map
room -> user -> expiry (ms since the epoch), a global serial bumped on every
change of who types, and each room's last-change serial, so an incremental
sync can tell which rooms to report. Only changes to the *set* of typers bump
the serial: a client re-sending "still typing" every few seconds (as the spec
recommends) only extends the expiry, as in Synapse.

Three stores hold it: `LocalTypingState` for one process, `RedisTypingState`
for several processes sharing it, and `PostgresTypingState` for several
processes without Redis. `TypingService` adds the rules (yourself
only, joined members only, capped timeouts), wakes long-polls in the room
through the notifier (across processes via the bus), and runs the task that
expires typers whose timeout passed: an expiry is a change, so clients see the
stop.

Every long-poll compares its token's serial with the current one, so that is
known in memory, not read from the shared store per sync (one query each,
25,000 of them when one message wakes 25,000 connections): each change's
serial is published on the bus before the change wakes anyone, as presence
does, and every sweep (each second with a shared store) reads it again, which
bounds how stale it gets while the bus is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from homeserver.alarm import Alarm
from homeserver.bus.base import Bus
from homeserver.clock import now_ms
from homeserver.errors import forbidden, unavailable
from homeserver.store import rooms as room_store
from homeserver.store import shadow_bans as shadow_ban_store
from homeserver.store import typing as typing_store
from homeserver.sync.notifier import Change, Notifier

log = logging.getLogger(__name__)

CHANNEL = "typing"

DEFAULT_TIMEOUT_MS = 30_000
# Synapse's cap: a client cannot claim to type for longer than two minutes.
MAX_TIMEOUT_MS = 120_000
# Another process may add a typer whose expiry comes before the one this
# process waits for; every process sweeps at least this often, so a typer whose
# process died also disappears.
SHARED_SWEEP_SECONDS = 1.0
# What a shared store (Redis; PostgreSQL's own errors are answered 503 anyway)
# that cannot be reached raises: typing degrades rather than failing syncs.
STORE_ERRORS = (RedisError, OSError)


class TypingState(Protocol):
    """Storage of typing state; every method is atomic with respect to the others."""

    async def set(self, room_id: str, user_id: str, expires_at: int | None, now: int) -> int:
        """Start (expires_at given) or stop typing: the serial of the change, or 0 when
        the set of typers did not change."""
        ...

    async def expire(self, now: int) -> tuple[list[str], int, int | None]:
        """Remove typers expired by `now`: (rooms changed, serial now, next expiry or
        None)."""
        ...

    async def serial(self) -> int: ...

    async def typing(
        self, room_ids: Sequence[str], since_serial: int | None, now: int
    ) -> dict[str, list[str]]:
        """Current typers of the rooms changed after `since_serial` (of all rooms with
        typers when None); expired typers not yet swept are left out."""
        ...


class LocalTypingState:
    """One process: plain dictionaries."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, int]] = {}
        self._changed_at: dict[str, int] = {}
        self._serial = 0

    async def set(self, room_id: str, user_id: str, expires_at: int | None, now: int) -> int:
        typers = self._rooms.get(room_id, {})
        was_typing = typers.get(user_id, 0) > now
        if expires_at is not None:
            self._rooms.setdefault(room_id, {})[user_id] = expires_at
            if was_typing:
                return 0
        else:
            if user_id not in typers:
                return 0
            del typers[user_id]
            if not typers:
                del self._rooms[room_id]
            # Had it expired already, the sweep would have counted it: a change either way.
        self._bump([room_id])
        return self._serial

    async def expire(self, now: int) -> tuple[list[str], int, int | None]:
        changed: list[str] = []
        upcoming: int | None = None
        for room_id, typers in list(self._rooms.items()):
            for user_id, expires_at in list(typers.items()):
                if expires_at <= now:
                    del typers[user_id]
                    if not changed or changed[-1] != room_id:
                        changed.append(room_id)
                elif upcoming is None or expires_at < upcoming:
                    upcoming = expires_at
            if not typers:
                del self._rooms[room_id]
        if changed:
            self._bump(changed)
        return changed, self._serial, upcoming

    def _bump(self, room_ids: list[str]) -> None:
        self._serial += 1
        for room_id in room_ids:
            self._changed_at[room_id] = self._serial

    async def serial(self) -> int:
        return self._serial

    async def typing(
        self, room_ids: Sequence[str], since_serial: int | None, now: int
    ) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for room_id in room_ids:
            typers = sorted(u for u, at in self._rooms.get(room_id, {}).items() if at > now)
            if since_serial is None:
                if typers:
                    found[room_id] = typers
            elif self._changed_at.get(room_id, 0) > since_serial:
                found[room_id] = typers
        return found


# KEYS: room hash, expiry index, serial, room serials.
# ARGV: room ID, user ID, expiry ("" to stop), index member, now.
_SET = """
local current = redis.call('HGET', KEYS[1], ARGV[2])
local was_typing = current and tonumber(current) > tonumber(ARGV[5])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  if was_typing then return 0 end
else
  if not current then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[4])
end
local serial = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[4], ARGV[1], serial)
return serial
"""

# KEYS: expiry index, serial, room serials. ARGV: now, prefix of room hashes.
# Returns {rooms changed, serial now, next expiry or ''}.
_EXPIRE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local seen = {}
local changed = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local cut = string.find(member, '\\n', 1, true)
  local room = string.sub(member, 1, cut - 1)
  local user = string.sub(member, cut + 1)
  local expires_at = redis.call('HGET', ARGV[2] .. room, user)
  if expires_at and tonumber(expires_at) <= tonumber(ARGV[1]) then
    redis.call('HDEL', ARGV[2] .. room, user)
    if not seen[room] then
      seen[room] = true
      table.insert(changed, room)
    end
  end
end
if #changed > 0 then
  local serial = redis.call('INCR', KEYS[2])
  for _, room in ipairs(changed) do
    redis.call('HSET', KEYS[3], room, serial)
  end
end
local upcoming = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {changed, redis.call('GET', KEYS[2]) or '0', upcoming[2] or ''}
"""


class RedisTypingState:
    """Several processes: a hash per room (user -> expiry), a sorted set of all
    expiries for the sweep, a global serial and a hash of each room's last-change
    serial. Changes run as Lua scripts, so two processes never interleave."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        prefix = f"linkchat:{namespace}:typing:"
        self._room_prefix = prefix + "room:"
        self._index = prefix + "expiries"
        self._serial = prefix + "serial"
        self._serials = prefix + "room_serials"
        self._set = self._redis.register_script(_SET)
        self._expire = self._redis.register_script(_EXPIRE)

    async def set(self, room_id: str, user_id: str, expires_at: int | None, now: int) -> int:
        serial = await self._set(
            keys=[self._room_prefix + room_id, self._index, self._serial, self._serials],
            args=[
                room_id,
                user_id,
                "" if expires_at is None else str(expires_at),
                f"{room_id}\n{user_id}",
                str(now),
            ],
        )
        return int(serial)

    async def expire(self, now: int) -> tuple[list[str], int, int | None]:
        changed, serial, upcoming = await self._expire(
            keys=[self._index, self._serial, self._serials], args=[str(now), self._room_prefix]
        )
        return list(changed), int(serial), int(float(upcoming)) if upcoming else None

    async def serial(self) -> int:
        return int(await self._redis.get(self._serial) or 0)

    async def typing(
        self, room_ids: Sequence[str], since_serial: int | None, now: int
    ) -> dict[str, list[str]]:
        if not room_ids:
            return {}
        rooms = list(room_ids)
        if since_serial is not None:
            serials = await self._redis.hmget(self._serials, rooms)
            rooms = [r for r, s in zip(rooms, serials, strict=True) if s and int(s) > since_serial]
            if not rooms:
                return {}
        async with self._redis.pipeline(transaction=True) as pipe:
            for room_id in rooms:
                pipe.hgetall(self._room_prefix + room_id)
            hashes = await pipe.execute()
        found: dict[str, list[str]] = {}
        for room_id, typers in zip(rooms, hashes, strict=True):
            current = sorted(user for user, at in typers.items() if int(at) > now)
            if current or since_serial is not None:
                found[room_id] = current
        return found


class PostgresTypingState:
    """Several processes without Redis: the tables of migrations/0022, through
    the pool (store/typing.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set(self, room_id: str, user_id: str, expires_at: int | None, now: int) -> int:
        async with self._pool.acquire() as conn:
            return await typing_store.set_typing(conn, room_id, user_id, expires_at, now)

    async def expire(self, now: int) -> tuple[list[str], int, int | None]:
        async with self._pool.acquire() as conn:
            return await typing_store.expire(conn, now)

    async def serial(self) -> int:
        async with self._pool.acquire() as conn:
            return await typing_store.serial(conn)

    async def typing(
        self, room_ids: Sequence[str], since_serial: int | None, now: int
    ) -> dict[str, list[str]]:
        if not room_ids:
            return {}
        async with self._pool.acquire() as conn:
            return await typing_store.typing(conn, room_ids, since_serial, now)


class TypingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        bus: Bus,
        state: TypingState,
        *,
        sweep_seconds: float | None = None,
        default_timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_timeout_ms: int = MAX_TIMEOUT_MS,
    ) -> None:
        self._pool = pool
        self._notifier = notifier
        self._bus = bus
        self._state = state
        self._sweep_seconds = sweep_seconds
        self._default_timeout_ms = default_timeout_ms
        self._max_timeout_ms = max_timeout_ms
        self._rescheduled = Alarm()
        self._sweeper: asyncio.Task[None] | None = None
        # The latest serial known here: this process's changes, the others' (bus), and
        # the store's at each sweep.
        self._serial = 0
        self._origin = secrets.token_hex(6)
        bus.subscribe(CHANNEL, self._on_bus_message)
        self._store_down = False
        # While the store cannot be reached, syncs keep the serial of then (`_down`).
        self._serial_when_down = 0

    async def start(self) -> None:
        self._known(await self._state.serial())
        self._sweeper = asyncio.create_task(self._sweep(), name="typing-expiry")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._rescheduled.close()
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # PUT /rooms/{roomId}/typing/{userId}

    async def set_typing(
        self, requester: str, user_id: str, room_id: str, typing: bool, timeout_ms: int | None
    ) -> None:
        if requester != user_id:
            raise forbidden("You may only set your own typing state.")
        async with self._pool.acquire() as conn:
            current = await room_store.membership(conn, room_id, user_id)
            shadow_banned = await shadow_ban_store.current_ban(conn, user_id) is not None
        if current is None or current.membership != "join":
            raise forbidden("You are not joined to this room.")
        if shadow_banned:
            return  # nobody sees a shadow-banned user type (rooms/shadow_bans.py)
        now = now_ms()
        expires_at = None
        if typing:
            timeout = self._default_timeout_ms if timeout_ms is None else timeout_ms
            expires_at = now + max(0, min(timeout, self._max_timeout_ms))
        try:
            serial = await self._state.set(room_id, user_id, expires_at, now)
        except STORE_ERRORS as error:
            self._down(error)
            raise unavailable("Typing notices are unavailable; try again.") from error
        if serial:
            await self._changed(serial, [room_id])
        if expires_at is not None:
            # The sweep may be sleeping past this expiry.
            self._rescheduled.ring()

    # What sync reads

    async def current_serial(self) -> int:
        """The latest serial this process knows of, without asking the store: a
        change elsewhere is known before it wakes any sync here (`_changed`). While
        the shared store cannot be reached, the one known then: syncs show no typing
        change and catch up once it is back."""
        if self._store_down:
            return self._serial_when_down
        return self._serial

    async def typing_for_sync(
        self, room_ids: Sequence[str], since_serial: int | None
    ) -> dict[str, list[str]]:
        """Per room, the users typing now: rooms whose typers changed after
        `since_serial` (possibly to nobody), or every room with typers when None."""
        try:
            found = await self._state.typing(room_ids, since_serial, now_ms())
        except STORE_ERRORS as error:
            self._down(error)
            return {}
        self._up()
        return found

    def _down(self, error: BaseException) -> None:
        if not self._store_down:
            log.warning("typing: store unreachable (%s); syncs show no typing until back", error)
            self._serial_when_down = self._serial
        self._store_down = True

    def _up(self) -> None:
        if self._store_down:
            log.warning("typing: store reachable again")
        self._store_down = False

    # Expiry

    async def _changed(self, serial: int, room_ids: list[str]) -> None:
        self._known(serial)
        # The bus first: a process woken by the notifier must already know the serial,
        # or its syncs would find nothing new and wait again. (One bus keeps the order
        # of what one process publishes.)
        try:
            await self._bus.publish(CHANNEL, json.dumps({"o": self._origin, "s": serial}))
        except Exception:
            log.exception("publishing a typing change failed")
        self._notifier.notify(Change(self._notifier.position, frozenset(room_ids), frozenset()))

    def _known(self, serial: int) -> None:
        self._serial = max(self._serial, serial)

    def _on_bus_message(self, message: str) -> None:
        data = json.loads(message)
        if data.get("o") != self._origin:
            self._known(int(data["s"]))

    async def _sweep(self) -> None:
        while not self._rescheduled.closed:
            delay = self._sweep_seconds
            try:
                changed, serial, upcoming = await self._state.expire(now_ms())
            except STORE_ERRORS as error:
                self._down(error)
                changed, serial, upcoming = [], 0, None
                delay = SHARED_SWEEP_SECONDS
            except Exception:
                log.exception("typing expiry sweep failed")
                changed, serial, upcoming = [], 0, None
                delay = SHARED_SWEEP_SECONDS
            else:
                self._up()
            if changed:
                await self._changed(serial, changed)
            else:
                self._known(serial)
            if upcoming is not None:
                until_next = max(0.0, (upcoming - now_ms()) / 1000)
                delay = until_next if delay is None else min(delay, until_next)
            await self._rescheduled.sleep(delay)


def create_typing_service(
    pool: asyncpg.Pool,
    notifier: Notifier,
    bus: Bus,
    redis: aioredis.Redis | None,
    namespace: str,
    *,
    shared_in_postgres: bool = False,
) -> TypingService:
    """Shared through Redis when the server has a Redis client, through PostgreSQL
    for processes without Redis (`shared_in_postgres`), else in this process."""
    if redis is not None:
        return TypingService(
            pool,
            notifier,
            bus,
            RedisTypingState(redis, namespace),
            sweep_seconds=SHARED_SWEEP_SECONDS,
        )
    if shared_in_postgres:
        return TypingService(
            pool, notifier, bus, PostgresTypingState(pool), sweep_seconds=SHARED_SWEEP_SECONDS
        )
    return TypingService(pool, notifier, bus, LocalTypingState())
