"""Deleting a room (DELETE /_synapse/admin/v2/rooms/{roomId}), in the background, as
Synapse's shutdown and purge.

The request is answered at once with a `delete_id`; the work then runs in this
process, and its progress is kept in `room_deletions` so any process answers the
delete_status queries. In order:

1. with `block`, the room is blocked (nobody enters it from then on);
2. with `new_room_user_id`, a new public room is made by that user, named
   `room_name`, in which everyone starts muted (`users_default` -10), and they post
   `message` there;
3. everyone in the room, invited to it or knocking at it leaves it (as themselves:
   the room's rules always allow that), and joins the new room if there is one;
4. the room's aliases move to the new room; with `purge` and no new room they are
   deleted;
5. with `purge` (the default), everyone who was ever in the room forgets it, and a
   `com.linkchat.room.purged` fact closes it: the log keeps its events (it is
   append-only), but nobody reads or enters it any more and no list shows it;
6. the deletion is recorded as `room.delete`, with what it did.

Every step is an ordinary event, so a deletion interrupted by a shutdown (marked
failed) is finished by deleting again: what is done already is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft, JsonDict
from homeserver.moderation.room_admin import RoomAdministration
from homeserver.rooms.service import RoomCreation, RoomService
from homeserver.store import room_deletions as deletion_store
from homeserver.store import rooms as room_store
from homeserver.store.room_deletions import DeletionRow

log = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation"
    " will be blocked."
)
# How long an ended deletion's status is shown, as Synapse.
STATUS_KEPT_MS = 24 * 3600 * 1000
INTERRUPTED = "interrupted by a server shutdown; delete the room again to finish"


@dataclass(frozen=True, slots=True)
class Deletion:
    """A DELETE /_synapse/admin/v2/rooms/{roomId} request, shape-checked."""

    room_id: str
    admin: str
    new_room_user_id: str | None = None
    room_name: str | None = None
    message: str | None = None
    block: bool = False
    purge: bool = True
    reason: str | None = None


@dataclass(slots=True)
class ShutdownRoom:
    """What a deletion did (Synapse's `shutdown_room`)."""

    kicked_users: list[str] = field(default_factory=list)
    failed_to_kick_users: list[str] = field(default_factory=list)
    local_aliases: list[str] = field(default_factory=list)
    new_room_id: str | None = None

    def as_json(self) -> JsonDict:
        return {
            "kicked_users": self.kicked_users,
            "failed_to_kick_users": self.failed_to_kick_users,
            "local_aliases": self.local_aliases,
            "new_room_id": self.new_room_id,
        }


def status_json(row: DeletionRow) -> JsonDict:
    shown: JsonDict = {"delete_id": row.delete_id, "room_id": row.room_id, "status": row.status}
    if row.status == "failed" and row.error is not None:
        shown["error"] = row.error
    shown["shutdown_room"] = row.result
    return shown


@dataclass(eq=False)
class RoomDeletions:
    pool: asyncpg.Pool
    rooms: RoomService
    administration: RoomAdministration
    trail: AuditTrail
    server_name: str
    _: KW_ONLY
    clock: Callable[[], float] = time.time
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False, repr=False)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def start(self, deletion: Deletion) -> str:
        """Check the request, schedule the deletion and return its `delete_id`."""
        creator = deletion.new_room_user_id
        if creator is not None and (
            not types.is_user_id(creator) or creator.partition(":")[2] != self.server_name
        ):
            raise invalid_param(f"User must be our own: {creator}")
        async with self.pool.acquire() as conn:
            known = await room_store.room_exists(conn, deletion.room_id)
            if not known and not deletion.block:
                raise not_found(f"Unknown room id {deletion.room_id}")
            delete_id = secrets.token_urlsafe(12)
            await deletion_store.insert(
                conn,
                delete_id,
                deletion.room_id,
                deletion.admin,
                ShutdownRoom().as_json(),
                self._now_ms(),
            )
        task = asyncio.create_task(self._run(delete_id, deletion, known), name="room-deletion")
        self._tasks[delete_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(delete_id, None))
        return delete_id

    async def status(self, delete_id: str) -> JsonDict:
        async with self.pool.acquire() as conn:
            row = await deletion_store.by_id(conn, delete_id, self._now_ms() - STATUS_KEPT_MS)
        if row is None:
            raise not_found(f"delete id '{delete_id}' not found")
        return status_json(row)

    async def statuses(self, room_id: str) -> list[JsonDict]:
        async with self.pool.acquire() as conn:
            rows = await deletion_store.by_room(conn, room_id, self._now_ms() - STATUS_KEPT_MS)
        if not rows:
            raise not_found(f"No delete task for room_id '{room_id}' found")
        return [status_json(row) for row in rows]

    async def wait(self, delete_id: str) -> None:
        """Until the deletion this process runs ends (for tests and shutdown)."""
        task = self._tasks.get(delete_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _set(
        self, delete_id: str, status: str, done: ShutdownRoom, error: str | None = None
    ) -> None:
        async with self.pool.acquire() as conn:
            await deletion_store.update(
                conn, delete_id, status, done.as_json(), self._now_ms(), error
            )

    async def _run(self, delete_id: str, deletion: Deletion, known: bool) -> None:
        done = ShutdownRoom()
        try:
            await self._set(delete_id, "active", done)
            await self._delete(deletion, known, done)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._set(delete_id, "failed", done, INTERRUPTED)
            raise
        except Exception as error:
            log.exception("deleting room %s failed", deletion.room_id)
            message = error.error if isinstance(error, MatrixError) else repr(error)
            await self._set(delete_id, "failed", done, message)
            return
        await self._set(delete_id, "complete", done)

    async def _delete(self, deletion: Deletion, known: bool, done: ShutdownRoom) -> None:
        room_id, admin = deletion.room_id, deletion.admin
        if deletion.block:
            await self.administration.set_blocked(admin, room_id, True, deletion.reason)
        if not known:
            return
        if deletion.new_room_user_id is not None:
            done.new_room_id = await self._new_room(deletion, deletion.new_room_user_id)
        async with self.pool.acquire() as conn:
            members = await deletion_store.members_to_remove(conn, room_id)
        for user_id in members:
            try:
                await self.rooms.leave(user_id, room_id, None)
                if done.new_room_id is not None and user_id != deletion.new_room_user_id:
                    await self.rooms.join(user_id, done.new_room_id, None)
            except MatrixError as refused:
                log.warning("could not move %s out of %s: %s", user_id, room_id, refused.error)
                done.failed_to_kick_users.append(user_id)
                continue
            done.kicked_users.append(user_id)
        await self._move_aliases(deletion, done)
        facts: list[Draft] = []
        if deletion.purge:
            async with self.pool.acquire() as conn:
                everyone = await deletion_store.members_ever(conn, room_id)
            for user_id in everyone:
                with contextlib.suppress(MatrixError):  # one still in it (refused to leave)
                    await self.rooms.forget(user_id, room_id)
            facts.append(self.trail.fact(admin, types.ROOM_PURGED, {}, state_key=room_id))
        details: dict[str, Any] = {
            "block": deletion.block,
            "purge": deletion.purge,
            "kicked_users": len(done.kicked_users),
            "new_room_id": done.new_room_id,
        }
        await self.trail.record(
            admin,
            "room.delete",
            target=room_id,
            reason=deletion.reason,
            details=details,
            facts=facts,
        )

    async def _new_room(self, deletion: Deletion, creator: str) -> str:
        room_id, _ = await self.rooms.create_room(
            creator,
            RoomCreation(
                preset="public_chat",
                name=deletion.room_name or DEFAULT_ROOM_NAME,
                # Everyone moved in starts muted, as Synapse.
                power_level_content_override={"users_default": -10},
            ),
        )
        body = deletion.message or DEFAULT_MESSAGE
        await self.rooms.send(
            creator, room_id, types.MESSAGE, {"msgtype": "m.text", "body": body}, None
        )
        return room_id

    async def _move_aliases(self, deletion: Deletion, done: ShutdownRoom) -> None:
        room_id, admin = deletion.room_id, deletion.admin
        async with self.pool.acquire() as conn:
            aliases = await room_store.aliases_of(conn, room_id)
        if done.new_room_id is None and not deletion.purge:
            return
        for alias in aliases:
            await self.rooms.delete_alias(admin, alias, True)
            if done.new_room_id is not None:
                await self.rooms.create_alias(admin, alias, done.new_room_id, True)
            done.local_aliases.append(alias)
