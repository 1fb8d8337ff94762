"""Presence: the rules of who may set and see it, when it changes, and what sync shows.

Presence is not in the log (DESIGN: truly ephemeral signals); `rules.py` says
how a record changes, `state.py` where records live (this process, or Redis for
several). This service decides when to change them, and keeps that cheap:

- A sync only writes when it would change what room-mates see (an offline user
  coming online); the "still connected" time of users whose syncs are in flight
  or just ended is written by a heartbeat every `touch_interval_ms`, in one
  batch. Activity (events this process appends) works the same way: a user
  already online and currently active is only noted, and written at most once
  per interval.
- A visible change takes a new stream position. It is published on the bus
  (other processes learn the position and drop what they remembered of the
  user) before the notifier wakes the long-polls of every room the user is
  in, so a woken sync on any process already knows the new position.
- The sync path first compares the token's presence position with the latest
  one this process knows: nothing changed costs one integer comparison.
- Who shares a room with whom comes from `room_members`, cached per user until
  the notifier reports a change naming them (a membership change does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from homeserver.alarm import Alarm
from homeserver.bus.base import Bus
from homeserver.clock import now_ms
from homeserver.errors import forbidden
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.presence.heard import HeardChanges
from homeserver.presence.rules import (
    NOBODY,
    OFFLINE,
    ONLINE,
    UNAVAILABLE,
    Presence,
    Timeouts,
    UserPresence,
    acted,
    chosen,
    content,
    deadline,
    expired,
    synced,
)
from homeserver.presence.state import (
    Change,
    LocalPresenceState,
    PostgresPresenceState,
    PresenceState,
    RedisPresenceState,
)
from homeserver.store import presence as presence_store
from homeserver.sync.notifier import Change as StreamChange
from homeserver.sync.notifier import Notifier
from homeserver.sync.user_cache import UserCache

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
CHANNEL = "presence"
# What a shared store (Redis) that cannot be reached raises.
STORE_ERRORS = (RedisError, OSError)
MEMO_SIZE = 100_000
# Concurrent writes of one heartbeat or sweep batch; each may take a pooled
# connection (whose rooms to wake), so a few, not the pool.
BATCH = 8
# Users taken from the timeout index per sweep round.
SWEEP_LIMIT = 1_000
# Users whose heartbeat one write of the store carries.
HEARTBEAT_BATCH = 1_000


def _bounded_put(cache: dict[str, Any], key: str, value: Any, size: int) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > size:
        cache.pop(next(iter(cache)))


class Syncing:
    """`PresenceService.syncing`: a plain class, as it wraps every long-poll
    (an `asynccontextmanager` adds a generator and its frames to each)."""

    __slots__ = ("_counted", "_service", "_set_presence", "_user_id")

    def __init__(self, service: PresenceService, user_id: str, set_presence: str) -> None:
        self._service = service
        self._user_id = user_id
        self._set_presence = set_presence
        self._counted = False

    async def __aenter__(self) -> None:
        self._counted = await self._service._begin_sync(self._user_id, self._set_presence)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._counted:
            self._service._end_sync(self._user_id, self._set_presence)


class PresenceService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        bus: Bus,
        state: PresenceState,
        timeouts: Timeouts,
        *,
        enabled: bool = True,
        max_room_members: int = 100,
    ) -> None:
        self._pool = pool
        self._max_room_members = max_room_members
        self._notifier = notifier
        self._bus = bus
        self._state = state
        self.timeouts = timeouts
        self.enabled = enabled
        self._origin = secrets.token_hex(6)
        # The latest visible change this process knows of (own writes, bus messages).
        self._position = 0
        # Who made each of the latest changes, from the same two.
        self._heard = HeardChanges()
        # The last record this process wrote or read per user; dropped when the
        # bus says another process changed the user.
        self._known: dict[str, UserPresence] = {}
        # Each user's joined rooms, kept until a change names them.
        self._rooms = UserCache(notifier, self._read_rooms)
        # user -> (syncs in flight, set_presence of the latest one)
        self._in_flight: dict[str, tuple[int, str]] = {}
        self._ended: dict[str, int] = {}
        self._active: dict[str, int] = {}
        self._next_heartbeat = 0
        self._sleeping_until = 0
        self._wakeup = Alarm()
        self._task: asyncio.Task[None] | None = None
        self._store_down = False
        bus.subscribe(CHANNEL, self._on_bus_message)

    async def start(self) -> None:
        if not self.enabled:
            return
        await self._state.open()
        self._position = max(self._position, await self._state.position())
        self._task = asyncio.create_task(self._run(), name="presence")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._wakeup.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def position(self) -> int:
        return self._position

    # PUT /presence/{userId}/status

    async def set_status(
        self, requester: str, user_id: str, presence: Presence, status_msg: str | None
    ) -> None:
        if requester != user_id:
            raise forbidden("You cannot set the presence of another user.")
        if not self.enabled:
            return  # accepted and ignored, as Synapse does with presence off
        now = now_ms()
        await self._apply(user_id, lambda record: chosen(record, presence, status_msg, now))

    # GET /presence/{userId}/status

    async def status(self, requester: str, user_id: str) -> JsonDict:
        if requester != user_id:
            # A membership change this process just committed must count already.
            await self._notifier.settled()
            rooms = await self._rooms.get_many([requester, user_id])
            if rooms[requester].isdisjoint(rooms[user_id]):
                raise forbidden("You are not allowed to see their presence.")
        now = now_ms()
        if not self.enabled:
            return content(NOBODY, now)
        record = (await self._state.get([user_id])).get(user_id, NOBODY)
        return content(expired(record, now, self.timeouts), now)

    # GET /sync: the caller's syncs and what they receive

    def syncing(self, user_id: str, set_presence: str) -> Syncing:
        """Around one sync (or a sync stream): the user is connected while it runs.
        `set_presence=offline` syncs leave presence alone (the spec)."""
        return Syncing(self, user_id, set_presence)

    async def _begin_sync(self, user_id: str, set_presence: str) -> bool:
        """Count a sync in; False when it does not count (see `syncing`)."""
        if not self.enabled or set_presence == OFFLINE:
            return False
        count, _ = self._in_flight.get(user_id, (0, set_presence))
        self._in_flight[user_id] = (count + 1, set_presence)
        try:
            await self._sync_started(user_id, set_presence)
        except BaseException:
            self._end_sync(user_id, set_presence)
            raise
        return True

    def _end_sync(self, user_id: str, set_presence: str) -> None:
        count, kind = self._in_flight.pop(user_id, (1, set_presence))
        if count > 1:
            self._in_flight[user_id] = (count - 1, kind)
        else:
            self._ended[user_id] = now_ms()

    async def _sync_started(self, user_id: str, set_presence: str) -> None:
        known = self._known.get(user_id)
        if known is not None and (
            known.presence != OFFLINE if set_presence == ONLINE else known.presence == UNAVAILABLE
        ):
            return  # `synced` would change nothing room-mates see; the heartbeat keeps the time
        now = now_ms()
        try:
            await self._apply(user_id, lambda record: synced(record, set_presence, now))
        except Exception:
            # A sync must not fail because presence could not be written.
            log.exception("recording that %s syncs failed", user_id)

    async def presence_for_sync(
        self,
        user_id: str,
        room_ids: Collection[str],
        since: int | None,
        allows: Callable[[str], bool],
        *,
        rooms_joined: Collection[str] = (),
        users_joined: Collection[str] = (),
        peeked: Collection[str] = (),
    ) -> tuple[list[JsonDict], int]:
        """m.presence events of the user and of everyone sharing one of `room_ids`
        with them: those changed after position `since`, or (`since` None or 0,
        or from before a reset of the store) everyone not offline. Returns the
        events and the position to put in the next token.

        And, changed or not, as Synapse: everyone in the rooms the user just joined
        (`rooms_joined`) and each user who just joined or was invited to one of theirs
        (`users_joined`): the client has not been told their presence yet. `peeked`:
        world_readable rooms the user reads without being in them, whose members' presence
        they see as a member's (the v1 /events with a room_id).

        While the shared store (Redis) cannot be reached, syncs show no presence
        and keep their token, so they catch up once it is back."""
        try:
            found = await self._presence_for_sync(
                user_id,
                room_ids,
                since,
                allows,
                rooms_joined=rooms_joined,
                users_joined=users_joined,
                peeked=peeked,
            )
        except STORE_ERRORS as error:
            if not self._store_down:
                log.warning("presence: store unreachable (%s); syncs show none until back", error)
            self._store_down = True
            return [], since or 0
        if self._store_down:
            log.warning("presence: store reachable again")
            self._store_down = False
        return found

    async def _presence_for_sync(
        self,
        user_id: str,
        room_ids: Collection[str],
        since: int | None,
        allows: Callable[[str], bool],
        *,
        rooms_joined: Collection[str],
        users_joined: Collection[str],
        peeked: Collection[str],
    ) -> tuple[list[JsonDict], int]:
        position = self._position
        if since is not None and since > position:
            # Another process took it; ours has not heard yet (or the store was reset).
            position = self._position = max(position, await self._state.position())
        records: dict[str, UserPresence] = {}
        if since is None or since == 0 or since > position:
            async with self._pool.acquire() as conn:
                members = await presence_store.joined_members_of(
                    conn, [*room_ids, *peeked], self._max_room_members
                )
            records = await self._state.get(sorted({*members, user_id}))
            records = {u: r for u, r in records.items() if r.presence != OFFLINE}
        elif since != position:
            # Only rooms that share presence count; a user in none of them (say, only
            # in broadcast channels or big rooms) sees only their own, without listing
            # everyone who changed.
            mine = set(room_ids) & (await self._rooms.get_many([user_id]))[user_id]
            mine |= set(peeked)
            if mine:
                changed = self._heard.changed(since, position)
                if changed is None:
                    changed = await self._state.changed(since, position)
            else:
                own = self._heard.changed_user(user_id, since, position)
                if own is None:
                    own = user_id in await self._state.changed(since, position)
                changed = [user_id] if own else []
            if changed:
                others = [u for u in changed if u != user_id] if mine else []
                rooms = await self._rooms.get_many(others) if others else {}
                shown = [
                    u
                    for u in changed
                    if u == user_id or (u in rooms and not rooms[u].isdisjoint(mine))
                ]
                records = await self._state.get(shown) if shown else {}
        if rooms_joined or users_joined:
            records.update(await self._newly_met(user_id, rooms_joined, users_joined, records))
        if not records:
            return [], position
        now = now_ms()
        events = [
            {
                "type": "m.presence",
                "sender": sender,
                "content": content(expired(record, now, self.timeouts), now),
            }
            for sender, record in sorted(records.items(), key=lambda item: item[1].position)
            if allows(sender)
        ]
        return events, position

    async def _newly_met(
        self,
        user_id: str,
        rooms_joined: Collection[str],
        users_joined: Collection[str],
        known: Collection[str],
    ) -> dict[str, UserPresence]:
        """The presence of those the user just came to share a room with (that room
        sharing presence: not above the size limit, not a broadcast channel)."""
        met = set(users_joined)
        async with self._pool.acquire() as conn:
            if rooms_joined:
                met.update(
                    await presence_store.joined_members_of(
                        conn, list(rooms_joined), self._max_room_members
                    )
                )
        met.discard(user_id)
        met.difference_update(known)
        if not met:
            return {}
        shares = (await self._rooms.get_many([user_id]))[user_id]
        rooms = await self._rooms.get_many(sorted(met))
        return await self._state.get(
            sorted(u for u in met if u in rooms and not rooms[u].isdisjoint(shares))
        )

    # Activity: the appender's listener

    def committed(self, events: Sequence[Event]) -> None:
        """Events this process appended: their senders were active (sending,
        reading). Noted now, written by the background task."""
        if not self.enabled:
            return
        now = now_ms()
        urgent = False
        for event in events:
            if types.is_room_chain(event.room_id) or event.type == types.RECEIPT:
                self._active[event.sender] = now
                known = self._known.get(event.sender)
                if known is None or known.presence != ONLINE or not known.currently_active:
                    urgent = True
        if urgent:
            self._wakeup.ring()

    # Writing

    async def _apply(
        self, user_id: str, change: Change, *, reschedule: bool = False
    ) -> UserPresence:
        updated = await self._state.update(user_id, change, reschedule=reschedule)
        record = updated.record
        _bounded_put(self._known, user_id, record, MEMO_SIZE)
        if updated.visible:
            self._position = max(self._position, record.position)
            self._heard.heard(record.position, user_id)
            await self._announce(user_id, record.position)
        due = deadline(record, self.timeouts)
        if updated.changed and due is not None and due < self._sleeping_until:
            self._wakeup.ring()
        return record

    async def _announce(self, user_id: str, position: int) -> None:
        # The bus first: a process woken by the notifier must already know the position.
        message = json.dumps({"o": self._origin, "p": position, "u": user_id})
        try:
            await self._bus.publish(CHANNEL, message)
        except Exception:
            log.exception("publishing a presence change failed")
        rooms = (await self._rooms.get_many([user_id]))[user_id]
        users = frozenset() if rooms else frozenset({user_id})
        self._notifier.notify(StreamChange(self._notifier.position, rooms, users))

    def _on_bus_message(self, message: str) -> None:
        data = json.loads(message)
        if data.get("o") == self._origin:
            return
        self._position = max(self._position, int(data["p"]))
        self._heard.heard(int(data["p"]), str(data["u"]))
        self._known.pop(str(data["u"]), None)

    async def _read_rooms(self, user_ids: list[str]) -> list[frozenset[str]]:
        async with self._pool.acquire() as conn:
            fetched = await presence_store.joined_rooms_of(conn, user_ids, self._max_room_members)
        return [frozenset(fetched.get(user_id, ())) for user_id in user_ids]

    # The background task: activity, heartbeats, timeouts

    async def _run(self) -> None:
        interval = self.timeouts.touch_interval_ms
        while not self._wakeup.closed:
            upcoming: int | None = None
            try:
                now = now_ms()
                await self._flush_activity(now)
                if now >= self._next_heartbeat:
                    self._next_heartbeat = now + interval
                    await self._heartbeat(now)
                upcoming = await self._sweep(now_ms())
            except Exception:
                log.exception("presence upkeep failed")
            # Other processes add timeouts too: look again at least every interval.
            wake_at = min(self._next_heartbeat, now_ms() + interval)
            if upcoming is not None:
                wake_at = min(wake_at, upcoming)
            self._sleeping_until = wake_at
            await self._wakeup.sleep(max(0, wake_at - now_ms()) / 1000)

    async def _flush_activity(self, now: int) -> None:
        pending, self._active = self._active, {}
        interval = self.timeouts.touch_interval_ms
        changes: list[tuple[str, Change]] = []
        for user_id, at in pending.items():
            known = self._known.get(user_id)
            if (
                known is not None
                and known.presence == ONLINE
                and known.currently_active
                and at - known.last_active_ts < interval
            ):
                continue  # written recently enough
            changes.append((user_id, _acted_at(at)))
        await self._apply_all(changes)

    async def _heartbeat(self, now: int) -> None:
        """Users with a sync in flight, or one that ended since the last heartbeat,
        are still connected: store that, so no process times them out."""
        ended, self._ended = self._ended, {}
        half = self.timeouts.touch_interval_ms // 2
        changes: dict[str, Change] = {}
        times: dict[str, int] = {}
        for user_id, (_, set_presence) in self._in_flight.items():
            known = self._known.get(user_id)
            if known is not None and known.presence != OFFLINE and now - known.last_sync_ts < half:
                continue
            changes[user_id] = _connected(set_presence, now)
            times[user_id] = now
        for user_id, at in ended.items():
            if user_id not in self._in_flight:
                changes[user_id] = _connected(None, at)
                times[user_id] = at
        # Only the time moves for nearly everyone: one write for them all (a transaction
        # per user made 100 a second per worker for 500 users, fell behind the offline
        # timeout, and users flapped offline and back). The rest one by one, as before.
        rest = set(times)
        for start in range(0, len(times), HEARTBEAT_BATCH):
            batch = dict(list(times.items())[start : start + HEARTBEAT_BATCH])
            try:
                rest.difference_update(set(batch) - set(await self._state.touch(batch)))
            except Exception as error:
                log.warning("presence heartbeats of %d users failed: %s", len(batch), error)
        for user_id in set(times) - rest:
            known = self._known.get(user_id)
            if known is not None:
                self._known[user_id] = replace(
                    known, last_sync_ts=max(known.last_sync_ts, times[user_id])
                )
        await self._apply_all([(user_id, changes[user_id]) for user_id in rest])

    async def _sweep(self, now: int) -> int | None:
        """Apply the timeouts that are due; the next one's time."""
        while True:
            due, upcoming = await self._state.due(now, SWEEP_LIMIT)
            await self._apply_all(
                [(user_id, _expired_at(now, self.timeouts)) for user_id in due], reschedule=True
            )
            if len(due) < SWEEP_LIMIT:
                return upcoming

    async def _apply_all(
        self, changes: list[tuple[str, Change]], *, reschedule: bool = False
    ) -> None:
        for start in range(0, len(changes), BATCH):
            batch = changes[start : start + BATCH]
            results = await asyncio.gather(
                *(self._apply(u, change, reschedule=reschedule) for u, change in batch),
                return_exceptions=True,
            )
            for (user_id, _), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("updating the presence of %s failed: %s", user_id, result)


def _acted_at(at: int) -> Change:
    return lambda record: acted(record, at)


def _expired_at(now: int, timeouts: Timeouts) -> Change:
    return lambda record: expired(record, now, timeouts)


def _connected(set_presence: str | None, at: int) -> Change:
    """Still connected at `at`; a sync still in flight also brings back a user who
    timed out meanwhile (say, a lost heartbeat), as its start would have."""

    def change(record: UserPresence) -> UserPresence:
        if set_presence is not None and record.presence == OFFLINE:
            return synced(record, set_presence, at)
        if record.last_sync_ts >= at:
            return record
        return replace(record, last_sync_ts=at)

    return change


def create_presence_service(
    pool: asyncpg.Pool,
    notifier: Notifier,
    bus: Bus,
    *,
    enabled: bool,
    idle_timeout_seconds: int,
    offline_timeout_seconds: int,
    max_room_members: int,
    redis: aioredis.Redis | None,
    namespace: str,
    shared_in_postgres: bool = False,
) -> PresenceService:
    """Shared through Redis when the server has a Redis client, through PostgreSQL
    for processes without Redis (`shared_in_postgres`), else in this process."""
    timeouts = Timeouts(idle_timeout_seconds * 1000, offline_timeout_seconds * 1000)
    state: PresenceState = LocalPresenceState(timeouts)
    if redis is not None:
        state = RedisPresenceState(redis, namespace, timeouts)
    elif shared_in_postgres:
        state = PostgresPresenceState(pool, timeouts)
    return PresenceService(
        pool, notifier, bus, state, timeouts, enabled=enabled, max_room_members=max_room_members
    )
