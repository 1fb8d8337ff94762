"""The admin API's rooms: list, details, members and state, in Synapse's shapes
(GET /_synapse/admin/v1/rooms[/{roomId}[/members|/state]]), and blocking a room
(PUT/GET /_synapse/admin/v1/rooms/{roomId}/block; what a block forbids is
moderation/room_blocks.py's), and making a user a room's admin
(POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin).

An admin reads any room whatever its history visibility: this is the operator's
view, never served to a client's account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.admin.audit import AuditTrail
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Event, JsonDict
from homeserver.roles.service import with_user_level
from homeserver.rooms.power_levels import CREATOR_LEVEL, PowerLevels
from homeserver.rooms.rendering import EventRenderer, Viewer
from homeserver.rooms.service import RoomService
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


@dataclass(eq=False)
class RoomAdministration:
    pool: asyncpg.Pool
    renderer: EventRenderer
    trail: AuditTrail
    room_service: RoomService
    server_name: str

    async def make_room_admin(
        self, admin: str, room_id_or_alias: str, user_id: str | None, reason: str | None
    ) -> str:
        """Give `user_id` (the admin when None) the level of the room's most powerful
        joined local user, as a power levels change sent by that user (the Matrix rules
        decide), and invite them unless they are in the room or it is public, as Synapse
        does; recorded as `room.make_admin`. The room's ID."""
        room_id = await self.room_service.resolve_room(room_id_or_alias)
        target = user_id or admin
        if not types.is_user_id(target) or target.partition(":")[2] != self.server_name:
            raise invalid_param("Only local users can be made room admins.")
        async with self.pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            levels_event = await rooms_store.state_event(conn, room_id, types.POWER_LEVELS, "")
            join_rules = await rooms_store.state_event(conn, room_id, types.JOIN_RULES, "")
            member = await rooms_store.membership(conn, room_id, target)
            if levels_event is None:
                creator = await room_store.creator(conn, room_id)
                granting, level = creator, CREATOR_LEVEL
            else:
                levels = PowerLevels.from_content(levels_event.content)
                joined = set(await rooms_store.joined_user_ids(conn, room_id))
                ranked = sorted(
                    (user for user in levels.users if user in joined),
                    key=lambda user: levels.users[user],
                )
                granting = ranked[-1] if ranked else None
                level = levels.users[granting] if granting is not None else 0
        if granting is None:
            raise MatrixError(400, "M_UNKNOWN", "No local admin user in room")
        try:
            await self.room_service.edit_state(
                granting,
                room_id,
                types.POWER_LEVELS,
                "",
                lambda content: with_user_level(content, target, level),
            )
        except MatrixError as refused:
            if refused.errcode != "M_FORBIDDEN":
                raise
            raise MatrixError(
                400, "M_UNKNOWN", "No local admin user in room with power to update power levels."
            ) from None
        inside = member is not None and member.membership in ("join", "invite")
        public = join_rules is not None and join_rules.content.get("join_rule") == "public"
        if not inside and not public:
            await self.room_service.invite(granting, room_id, target, None)
        await self.trail.record(
            admin,
            "room.make_admin",
            target=room_id,
            reason=reason,
            details={"user_id": target, "level": level, "granted_by": granting},
        )
        return room_id

    async def blocked_by(self, room_id: str) -> str | None:
        """The admin who blocked the room (known to the server or not); None if it is not."""
        async with self.pool.acquire() as conn:
            return await room_block_store.blocked_by(conn, room_id)

    async def set_blocked(self, admin: str, room_id: str, block: bool, reason: str | None) -> None:
        """Block the room (known or not: it may be blocked before anyone makes it) or
        unblock it; recorded as `room.block`. Doing what is already so records nothing."""

        def edit(current: Event | None) -> JsonDict | None:
            if (current is not None and current.content.get("block") is True) == block:
                return None
            return {"block": block}

        await self.trail.record_edit(
            admin,
            "room.block",
            room_id,
            edit,
            event_type=types.ROOM_BLOCK,
            reason=reason,
            details={"block": block},
            what="The room's block",
        )

    async def rooms(self, query: RoomQuery, offset: int, limit: int) -> tuple[list[JsonDict], int]:
        if query.order_by not in ORDERS:
            raise invalid_param(f"Unknown order_by {query.order_by!r}.")
        if query.search_term == "":
            raise invalid_param("search_term cannot be an empty string")
        async with self.pool.acquire() as conn:
            rows, total = await room_store.rooms(conn, query, offset, limit)
        return [_listed(row) for row in rows], total

    async def room(self, room_id: str) -> JsonDict:
        async with self.pool.acquire() as conn:
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
        async with self.pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            return await rooms_store.joined_user_ids(conn, room_id)

    async def forward_extremities(self, room_id: str) -> list[JsonDict]:
        """Synapse's forward extremities, for consoles that show them: a room here is one
        chain, so its one extremity is its latest event (`state_group`: its position)."""
        async with self.pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            head = await room_store.chain_head(conn, room_id)
        if head is None:
            return []
        return [
            {
                "event_id": head["event_id"],
                "state_group": head["stream_position"],
                "depth": head["depth"],
                "received_ts": head["received_ts"],
            }
        ]

    async def state(self, viewer: Viewer, room_id: str, event_type: str | None) -> list[JsonDict]:
        async with self.pool.acquire() as conn:
            if not await rooms_store.room_exists(conn, room_id):
                raise not_found(ROOM_NOT_FOUND)
            events = await rooms_store.state_events(conn, room_id)
        if event_type is not None:
            events = [event for event in events if event.type == event_type]
        return await self.renderer.serve(events, viewer)
