"""Where presence records live: this process's memory, or Redis (or, without Redis,
PostgreSQL) shared by processes.

Both stores keep, per user, a `UserPresence`; a global stream position bumped
by every visible change (presence, status message, currently active) and the
position of each user's last one, so an incremental sync asks "who changed
after my token"; and each user's next timeout, so the sweep finds who is due
without scanning everyone. `update` applies a pure change atomically: the
position is taken in the same step that stores the record, so a reader never
sees position 11 without the change numbered 10.

Positions start at the wall clock in milliseconds (when Redis has no counter
yet, or the process starts), so a token from before a restart is older than
every change after it rather than ahead of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis

from homeserver.clock import now_ms
from homeserver.presence.rules import (
    NOBODY,
    STATES,
    Timeouts,
    UserPresence,
    deadline,
    still_connected,
)
from homeserver.store import presence_state as shared_store

Change = Callable[[UserPresence], UserPresence]
# Two writers racing on one user in Redis retry; this many conflicts in a row is a bug.
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Updated:
    record: UserPresence  # the record as stored now
    changed: bool  # anything was written
    visible: bool  # a change room-mates see: it took a new position


class PresenceState(Protocol):
    """Storage of presence; `update` is atomic with respect to every other call."""

    async def open(self) -> None: ...

    async def position(self) -> int:
        """The position of the latest visible change."""
        ...

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserPresence]:
        """The records of those users that have one."""
        ...

    async def update(self, user_id: str, change: Change, *, reschedule: bool = False) -> Updated:
        """Apply `change` to the user's record and return the result. With
        `reschedule`, the user's next timeout is stored again even then (the sweep
        passes it, so a timeout that turned out early is not found due forever)."""
        ...

    async def touch(self, times: Mapping[str, int]) -> list[str]:
        """Heartbeats: each user still connected at `times[user]`, in one go (a round
        trip or two for all). Applies `rules.still_connected` where that is all that
        changes; returns the users it did not (offline, no record yet, or written
        meanwhile by another process), for `update` one by one."""
        ...

    async def changed(self, after: int, upto: int) -> list[str]:
        """Users whose last visible change has a position in (after, upto]."""
        ...

    async def due(self, now: int, limit: int) -> tuple[list[str], int | None]:
        """Up to `limit` users whose next timeout is at or before `now`, and the
        earliest timeout after those (None when nobody has one)."""
        ...


class LocalPresenceState:
    """One process: a dictionary of records, one of positions kept in position
    order (a changed user moves to the end), and a heap of timeouts."""

    def __init__(self, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        self._records: dict[str, UserPresence] = {}
        self._changed: dict[str, int] = {}
        self._position = now_ms()
        self._deadlines: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    async def open(self) -> None:
        return None

    async def position(self) -> int:
        return self._position

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserPresence]:
        records = self._records
        return {user: records[user] for user in user_ids if user in records}

    async def update(self, user_id: str, change: Change, *, reschedule: bool = False) -> Updated:
        old = self._records.get(user_id, NOBODY)
        new = change(old)
        if new == old:
            if reschedule:
                self._schedule(user_id, new)
            return Updated(old, False, False)
        visible = new.visible() != old.visible()
        if visible:
            self._position += 1
            new = replace(new, position=self._position)
            self._changed.pop(user_id, None)
            self._changed[user_id] = self._position
        self._records[user_id] = new
        self._schedule(user_id, new)
        return Updated(new, True, visible)

    async def touch(self, times: Mapping[str, int]) -> list[str]:
        rest: list[str] = []
        for user_id, at in times.items():
            old = self._records.get(user_id)
            new = None if old is None else still_connected(old, at)
            if new is None:
                rest.append(user_id)
            elif new is not old:
                self._records[user_id] = new
                self._schedule(user_id, new)
        return rest

    def _schedule(self, user_id: str, record: UserPresence) -> None:
        due = deadline(record, self._timeouts)
        if due is None:
            self._deadlines.pop(user_id, None)
        elif self._deadlines.get(user_id) != due:
            self._deadlines[user_id] = due
            heapq.heappush(self._heap, (due, user_id))

    async def changed(self, after: int, upto: int) -> list[str]:
        found: list[str] = []
        for user_id, position in reversed(self._changed.items()):
            if position <= after:
                break
            if position <= upto:
                found.append(user_id)
        return found

    async def due(self, now: int, limit: int) -> tuple[list[str], int | None]:
        found: list[str] = []
        heap = self._heap
        while heap and len(found) < limit:
            at, user_id = heap[0]
            if self._deadlines.get(user_id) != at:
                heapq.heappop(heap)  # superseded by a later schedule
            elif at <= now:
                heapq.heappop(heap)
                del self._deadlines[user_id]
                found.append(user_id)
            else:
                break
        return found, heap[0][0] if heap else None


# KEYS: user hash, changes (zset user -> position), deadlines (zset user -> ms),
#       position counter.
# ARGV: user ID, version read, visible ('1'/'0'), deadline ('' for none),
#       then the record's field/value pairs.
# Returns the record's position, or -1 when someone wrote the user since the read.
_COMMIT = """
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[2] then return -1 end
local position = redis.call('HGET', KEYS[1], 'pos') or '0'
if ARGV[3] == '1' then
  position = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], position, ARGV[1])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', tonumber(version) + 1, 'pos', position, unpack(ARGV, 5))
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return tonumber(position)
"""


def _encode(record: UserPresence) -> list[str]:
    fields = [
        "p",
        record.presence,
        "a",
        "1" if record.currently_active else "0",
        "la",
        str(record.last_active_ts),
        "ls",
        str(record.last_sync_ts),
        "cs",
        str(record.chosen_ts),
    ]
    if record.status_msg is not None:
        fields += ["m", record.status_msg]
    return fields


def _decode(raw: dict[str, str]) -> tuple[UserPresence, str]:
    """The record and its version ("0" when the user has none)."""
    if not raw:
        return NOBODY, "0"
    presence = raw.get("p", "offline")
    return (
        UserPresence(
            presence=presence if presence in STATES else "offline",  # type: ignore[arg-type]
            status_msg=raw.get("m"),
            currently_active=raw.get("a") == "1",
            last_active_ts=int(raw.get("la", 0)),
            last_sync_ts=int(raw.get("ls", 0)),
            position=int(raw.get("pos", 0)),
            chosen_ts=int(raw.get("cs", 0)),
        ),
        raw.get("v", "0"),
    )


class RedisPresenceState:
    """Several processes: a hash per user, a sorted set of each user's last change
    position, a sorted set of timeouts and a counter. A change reads the user's
    hash, computes the new record in Python (the same functions as in one
    process) and commits it with a Lua script that checks the version it read,
    so two processes never overwrite each other; the loser retries."""

    def __init__(self, redis: aioredis.Redis, namespace: str, timeouts: Timeouts) -> None:
        self._redis = redis
        self._timeouts = timeouts
        prefix = f"linkchat:{namespace}:presence:"
        self._user_prefix = prefix + "user:"
        self._changes = prefix + "changes"
        self._deadlines = prefix + "deadlines"
        self._position = prefix + "position"
        self._commit = self._redis.register_script(_COMMIT)

    async def open(self) -> None:
        await self._redis.set(self._position, now_ms(), nx=True)

    async def position(self) -> int:
        return int(await self._redis.get(self._position) or 0)

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserPresence]:
        if not user_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(self._user_prefix + user_id)
            hashes = await pipe.execute()
        return {
            user_id: _decode(raw)[0] for user_id, raw in zip(user_ids, hashes, strict=True) if raw
        }

    async def update(self, user_id: str, change: Change, *, reschedule: bool = False) -> Updated:
        key = self._user_prefix + user_id
        for _ in range(MAX_ATTEMPTS):
            raw: dict[str, str] = await self._redis.hgetall(key)  # type: ignore[assignment]
            old, version = _decode(raw)
            new = change(old)
            if new == old and not (reschedule and version != "0"):
                return Updated(old, False, False)
            visible = new.visible() != old.visible()
            due = deadline(new, self._timeouts)
            position = int(
                await self._commit(
                    keys=[key, self._changes, self._deadlines, self._position],
                    args=[
                        user_id,
                        version,
                        "1" if visible else "0",
                        "" if due is None else str(due),
                        *_encode(new),
                    ],
                )
            )
            if position >= 0:
                return Updated(replace(new, position=position), new != old, visible)
        raise RuntimeError(f"presence of {user_id} kept changing under {MAX_ATTEMPTS} attempts")

    async def touch(self, times: Mapping[str, int]) -> list[str]:
        user_ids = list(times)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(self._user_prefix + user_id)
            hashes = await pipe.execute()
        rest: list[str] = []
        writes: list[str] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, raw in zip(user_ids, hashes, strict=True):
                old, version = _decode(raw)
                new = still_connected(old, times[user_id]) if raw else None
                if new is None:
                    rest.append(user_id)
                    continue
                if new is old:
                    continue
                due = deadline(new, self._timeouts)
                key = self._user_prefix + user_id
                await self._commit(  # queued in the pipeline, sent with the others
                    keys=[key, self._changes, self._deadlines, self._position],
                    args=[user_id, version, "0", "" if due is None else str(due), *_encode(new)],
                    client=pipe,
                )
                writes.append(user_id)
            positions = await pipe.execute() if writes else []
        # -1: another process wrote the user since the read.
        rest += [user_id for user_id, at in zip(writes, positions, strict=True) if int(at) < 0]
        return rest

    async def changed(self, after: int, upto: int) -> list[str]:
        if upto <= after:
            return []
        users = await self._redis.zrangebyscore(self._changes, f"({after}", upto)
        return [str(user) for user in users]

    async def due(self, now: int, limit: int) -> tuple[list[str], int | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self._deadlines, "-inf", now, start=0, num=limit)
            pipe.zrangebyscore(self._deadlines, f"({now}", "+inf", start=0, num=1, withscores=True)
            due, upcoming = await pipe.execute()
        return list(due), int(upcoming[0][1]) if upcoming else None


@dataclass(eq=False)
class PostgresPresenceState:
    """Several processes without Redis: the tables of migrations/0022. As in Redis, a
    change reads the record, computes the new one in Python and commits it if the
    version read still holds; the loser retries."""

    pool: asyncpg.Pool
    timeouts: Timeouts

    async def open(self) -> None:
        async with self.pool.acquire() as conn:
            await shared_store.open_position(conn, now_ms())

    async def position(self) -> int:
        async with self.pool.acquire() as conn:
            return await shared_store.position(conn)

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserPresence]:
        if not user_ids:
            return {}
        async with self.pool.acquire() as conn:
            rows = await shared_store.records(conn, user_ids)
        return {row["user_id"]: _from_row(row) for row in rows}

    async def update(self, user_id: str, change: Change, *, reschedule: bool = False) -> Updated:
        async with self.pool.acquire() as conn:
            for _ in range(MAX_ATTEMPTS):
                rows = await shared_store.records(conn, [user_id])
                old = _from_row(rows[0]) if rows else NOBODY
                version = int(rows[0]["version"]) if rows else 0
                new = change(old)
                if new == old and not (reschedule and version):
                    return Updated(old, False, False)
                visible = new.visible() != old.visible()
                fields = (
                    new.presence,
                    new.status_msg,
                    new.currently_active,
                    new.last_active_ts,
                    new.last_sync_ts,
                    new.chosen_ts,
                )
                try:
                    position = await shared_store.commit(
                        conn,
                        user_id,
                        version,
                        old.position,
                        visible,
                        deadline(new, self.timeouts),
                        fields,
                    )
                except shared_store.Conflict:
                    continue
                return Updated(replace(new, position=position), new != old, visible)
        raise RuntimeError(f"presence of {user_id} kept changing under {MAX_ATTEMPTS} attempts")

    async def touch(self, times: Mapping[str, int]) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = {row["user_id"]: row for row in await shared_store.records(conn, list(times))}
            rest: list[str] = []
            writes: list[tuple[str, int, int, int | None]] = []
            for user_id, at in times.items():
                row = rows.get(user_id)
                old = _from_row(row) if row is not None else None
                new = None if old is None else still_connected(old, at)
                if row is None or new is None:
                    rest.append(user_id)
                elif new is not old:
                    due = deadline(new, self.timeouts)
                    writes.append((user_id, int(row["version"]), new.last_sync_ts, due))
            written = await shared_store.touch(conn, writes) if writes else set()
        return rest + [user_id for user_id, *_ in writes if user_id not in written]

    async def changed(self, after: int, upto: int) -> list[str]:
        if upto <= after:
            return []
        async with self.pool.acquire() as conn:
            return await shared_store.changed(conn, after, upto)

    async def due(self, now: int, limit: int) -> tuple[list[str], int | None]:
        async with self.pool.acquire() as conn:
            return await shared_store.due(conn, now, limit)


def _from_row(row: asyncpg.Record) -> UserPresence:
    presence = row["presence"]
    return UserPresence(
        presence=presence if presence in STATES else "offline",
        status_msg=row["status_msg"],
        currently_active=row["currently_active"],
        last_active_ts=row["last_active_ts"],
        last_sync_ts=row["last_sync_ts"],
        position=row["position"],
        chosen_ts=row["chosen_ts"],
    )
