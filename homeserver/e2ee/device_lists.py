"""The `device_lists` of /sync: whose devices or keys changed, among those one shares a room
with, and who stopped sharing any; and waking those who share a room with a user whose
device list changed.

Cost per poll is in the changes, not in the rooms: a long-poll answered from the
in-memory tail of the log looks only at the window's device-list facts (found once per
window, shared by every poll woken by it) and at membership changes in the rooms it is
joined to (each compared with the membership before the window, read once per window:
a new display name is a join after a join, and no change to anyone's device list); each
such user is checked against the poll's joined rooms with that user's own rooms, kept
in memory until a change names them. A user in 500 rooms with nothing
changed costs a few dictionary lookups. A sync built from the database (initial,
after the user's own membership changed, `/keys/changes`) asks the change index
(`device_list_changes`) for the range since its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Collection, Coroutine, Sequence
from typing import Any

import asyncpg

from homeserver.e2ee.service import device_list_changes, started_sharing
from homeserver.events import types
from homeserver.events.model import Event
from homeserver.projections import e2ee as e2ee_projection
from homeserver.projections.changes import DEVICE_LIST_CHANGES, Upsert
from homeserver.store import e2ee_keys as key_store
from homeserver.sync.notifier import Change, Notifier
from homeserver.sync.recent import WindowSummary
from homeserver.sync.user_cache import UserCache

log = logging.getLogger(__name__)

WINDOW_CACHE_SIZE = 8
# Per room, per member whose membership a window moved: (before, after) the window.
Moves = dict[str, dict[str, tuple[str | None, str]]]


def changed_users(events: Sequence[Event]) -> set[str]:
    """Users whose device list the events change: what the projection records."""
    found: set[str] = set()
    for event in events:
        if not types.is_account_chain(event.room_id):
            continue
        for change in e2ee_projection.changes(event):
            if isinstance(change, Upsert) and change.table is DEVICE_LIST_CHANGES:
                found.add(change.row["user_id"])
    return found


class DeviceLists:
    def __init__(self, pool: asyncpg.Pool, notifier: Notifier) -> None:
        self._pool = pool
        self._notifier = notifier
        # Each user's joined rooms, kept until a change names them.
        self._rooms = UserCache(notifier, self._read_rooms)
        self._windows: dict[tuple[int, int], frozenset[str]] = {}
        self._moves: dict[tuple[int, int], asyncio.Future[Moves]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # Waking

    def committed(self, events: Sequence[Event]) -> None:
        """Appender listener: wake the long-polls in every room of a user whose device list
        changed (in every process: the change goes out on the bus), so their device_lists
        name the user."""
        users = changed_users(events)
        if users:
            position = max(event.stream_position for event in events)
            self._spawn(self._wake(users, position))

    async def _wake(self, users: set[str], position: int) -> None:
        async with self._pool.acquire() as conn:
            rooms = await key_store.joined_rooms(conn, users)
        everywhere = frozenset(room for joined in rooms.values() for room in joined)
        self._notifier.notify(Change(position, everywhere, frozenset(users)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("waking for a device list change failed: %s", task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # Sync

    async def for_sync(
        self,
        user_id: str,
        since: int | None,
        upper: int,
        joined: Collection[str],
        window: WindowSummary | None,
    ) -> tuple[list[str], list[str]]:
        """(changed, left) since position `since` (none for an initial sync). With `window`
        (the tail of the log over (since, upper], the user's own memberships unchanged in
        it), from memory; without, from the database."""
        if since is None or since >= upper:
            return [], []
        if window is None:
            async with self._pool.acquire() as conn:
                read = await device_list_changes(conn, user_id, since, upper)
            return sorted(read[0]), sorted(read[1])
        in_window = self._window_changes(window, since, upper)
        candidates = set(in_window)
        candidates.discard(user_id)
        joined_now: set[str] = set()
        departed: set[str] = set()
        rooms_moved = [room for room in window.members_changed if room in joined]
        if rooms_moved:
            moves = await self._window_moves(window, since, upper)
            for room_id in rooms_moved:
                for member, (before, after) in moves.get(room_id, {}).items():
                    started = started_sharing(before, after)
                    if started is not None and member != user_id:
                        (joined_now if started else departed).add(member)
        changed: set[str] = joined_now | ({user_id} if user_id in in_window else set())
        candidates -= changed
        departed -= changed
        if not candidates and not departed:
            return sorted(changed), []
        rooms = await self._rooms.get_many(candidates | departed)
        changed |= {user for user in candidates if not rooms[user].isdisjoint(joined)}
        left = {user for user in departed if rooms[user].isdisjoint(joined)} - changed
        return sorted(changed), sorted(left)

    async def _read_rooms(self, users: list[str]) -> list[frozenset[str]]:
        async with self._pool.acquire() as conn:
            read = await key_store.joined_rooms(conn, users)
        return [frozenset(read.get(user, ())) for user in users]

    def _window_moves(self, window: WindowSummary, since: int, upper: int) -> Awaitable[Moves]:
        """Per room, each member whose membership the window moved: (before, after). Read
        once for every poll of the window (the memberships before it from the database)."""
        key = (since, upper)
        found = self._moves.get(key)
        if found is None or (found.done() and (found.cancelled() or found.exception())):
            found = self._moves[key] = asyncio.ensure_future(self._read_moves(window, since))
            while len(self._moves) > WINDOW_CACHE_SIZE:
                del self._moves[next(iter(self._moves))]
        return asyncio.shield(found)

    async def _read_moves(self, window: WindowSummary, since: int) -> Moves:
        after: dict[tuple[str, str], str] = {}
        for room_id in window.members_changed:
            for item in window.by_room.get(room_id, ()):
                event = item.event
                if event.type == types.MEMBER and event.state_key is not None:
                    membership = event.content.get("membership")
                    after[(room_id, event.state_key)] = (
                        membership if isinstance(membership, str) else "leave"
                    )
        async with self._pool.acquire() as conn:
            before = await key_store.memberships_at(conn, list(after), since)
        moves: Moves = {}
        for (room_id, member), membership in after.items():
            moves.setdefault(room_id, {})[member] = (before.get((room_id, member)), membership)
        return moves

    def _window_changes(self, window: WindowSummary, since: int, upper: int) -> frozenset[str]:
        """Users whose device list changed in the window; found once for every poll of it."""
        key = (since, upper)
        found = self._windows.get(key)
        if found is None:
            events = [
                item.event
                for chain, items in window.by_room.items()
                if types.is_account_chain(chain)
                for item in items
            ]
            found = self._windows[key] = frozenset(changed_users(events))
            while len(self._windows) > WINDOW_CACHE_SIZE:
                del self._windows[next(iter(self._windows))]
        return found
