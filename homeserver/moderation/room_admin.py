"""The admin API's rooms: list, details, members and state, in Synapse's shapes
(GET /_synapse/admin/v1/rooms[/{roomId}[/members|/state]]), and blocking a room
(PUT/GET /_synapse/admin/v1/rooms/{roomId}/block; what a block forbids is
moderation/room_blocks.py's).

An admin reads any room whatever its history visibility: this is the operator's
view, never served to a client's account.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import STATE_CHANGED, JsonDict, StateEdit
from homeserver.rooms.rendering import EventRenderer, Viewer
from homeserver.rooms.service import STATE_EDIT_ATTEMPTS
from homeserver.store import admin_rooms as room_store
from homeserver.store import room_blocks as room_block_store
from homeserver.store import rooms as rooms_store
from homeserver.store.admin_rooms import ORDERS, RoomQuery

__all__ = ["ORDERS", "RoomAdministration", "RoomQuery"]

ROOM_NOT_FOUND = "Room not found"


def _listed(row: dict[str, Any]) -> JsonDict:
    """A room as GET /_synapse/admin/v1/rooms lists it."""
    return {
        "room_id": row["room_id"],
        "name": row["name"],
        "canonical_alias": row["canonical_alias"],
        "joined_members": row["joined_members"],
        # Every member is local: the server does not federate.
        "joined_local_members": row["joined_members"],
        "version": row["version"],
        "creator": row["creator"],
        "encryption": row["encryption"],
        "federatable": row["federatable"],
        "public": row["public"],
        "join_rules": row["join_rule"],
        "guest_access": row["guest_access"],
        "history_visibility": row["history_visibility"],
        "state_events": row["state_events"],
        "room_type": row["room_type"],
    }


class RoomAdministration:
    def __init__(self, pool: asyncpg.Pool, renderer: EventRenderer, trail: AuditTrail) -> None:
        self._pool = pool
        self._renderer = renderer
        self._trail = trail

    async def blocked_by(self, room_id: str) -> str | None:
        """The admin who blocked the room (known to the server or not); None if it is not."""
        async with self._pool.acquire() as conn:
            return await room_block_store.blocked_by(conn, room_id)

    async def set_blocked(self, admin: str, room_id: str, block: bool, reason: str | None) -> None:
        """Block the room (known or not: it may be blocked before anyone makes it) or
        unblock it; recorded as `room.block`. Doing what is already so records nothing."""
        for _ in range(STATE_EDIT_ATTEMPTS):
            async with self._pool.acquire() as conn:
                current = await rooms_store.state_event(
                    conn, self._trail.chain, types.ROOM_BLOCK, room_id
                )
            if (current is not None and current.content.get("block") is True) == block:
                return
            fact = StateEdit(
                self._trail.chain,
                admin,
                types.ROOM_BLOCK,
                {"block": block},
                room_id,
                replaces=current.event_id if current is not None else None,
            )
            try:
                await self._trail.record(
                    admin,
                    "room.block",
                    target=room_id,
                    reason=reason,
                    details={"block": block},
                    facts=[fact],
                )
            except MatrixError as refused:
                if refused.errcode == STATE_CHANGED:
                    continue
                raise
            return
        raise MatrixError(409, STATE_CHANGED, "The room's block kept changing; try again.")

    async def rooms(self, query: RoomQuery, offset: int, limit: int) -> tuple[list[JsonDict], int]:
        if query.order_by not in ORDERS:
            raise invalid_param(f"Unknown order_by {query.order_by!r}.")
        if query.search_term == "":
            raise invalid_param("search_term cannot be an empty string")
        async with self._pool.acquire() as conn:
            rows, total = await room_store.rooms(conn, query, offset, limit)
        return [_listed(row) for row in rows], total

    async def room(self, room_id: str) -> JsonDict:
        async with self._pool.acquire() as conn:
            row = await room_store.room(conn, room_id)
        if row is None:
            raise not_found(ROOM_NOT_FOUND)
        return {
            **_listed(row),
            "topic": row["topic"],
            "avatar": row["avatar_url"],
            "joined_local_devices": row["joined_local_devices"],
            "forgotten": row["forgotten"],
        }

    async def members(self, room_id: str) -> list[str]:
        async with self._pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            return await room_store.joined_members(conn, room_id)

    async def state(self, viewer: Viewer, room_id: str, event_type: str | None) -> list[JsonDict]:
        async with self._pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            events = await rooms_store.state_events(conn, room_id)
        if event_type is not None:
            events = [event for event in events if event.type == event_type]
        return await self._renderer.serve(events, viewer)
