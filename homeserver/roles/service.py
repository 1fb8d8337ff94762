"""Roles of a room's members, read off and written into m.room.power_levels.

Setting a role is an edit of one entry of the power levels' `users` map,
appended through the ordinary write path, so the Matrix rules decide it (a
sender needs the level of m.room.power_levels, may not raise anyone above
their own level, and may not change a user at or above it). The edit is a
read-modify-write: `RoomService.edit_state` makes it lose no concurrent edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import JsonDict
from homeserver.roles.ladder import Role, RoleLadder
from homeserver.rooms.power_levels import PowerLevels, as_level
from homeserver.rooms.service import RoomService
from homeserver.store import accounts as account_store
from homeserver.store import groups as group_store
from homeserver.store import rooms as room_store

# Whose roles a room lists: its members, and those invited with a role waiting.
LISTED_MEMBERSHIPS = ("join", "invite")


def with_user_level(content: Mapping[str, Any], user_id: str, level: int) -> JsonDict:
    """Power levels content with `user_id` at `level` and everything else kept.

    A user put back at `users_default` leaves the `users` map, so a channel's
    levels do not grow by one entry per subscriber who was ever promoted.
    """
    raw_users = content.get("users")
    users = dict(raw_users) if isinstance(raw_users, Mapping) else {}
    default = as_level(content.get("users_default"))
    if level == (default if default is not None else 0):
        users.pop(user_id, None)
    else:
        users[user_id] = level
    return {**content, "users": users}


class RoleService:
    def __init__(self, pool: asyncpg.Pool, rooms: RoomService, ladder: RoleLadder) -> None:
        self._pool = pool
        self._rooms = rooms
        self._ladder = ladder

    @property
    def ladder(self) -> RoleLadder:
        return self._ladder

    async def roles(self, user_id: str, room_id: str) -> dict[str, Role | None]:
        """Role of each member (and invitee) of the room; None below `member` (muted)."""
        async with self._pool.acquire() as conn:
            await self._require_joined(conn, room_id, user_id)
            levels = await self._levels(conn, room_id)
            members = await group_store.member_ids(conn, room_id, LISTED_MEMBERSHIPS)
        return {member: self._ladder.role_of(levels.user_level(member)) for member in members}

    async def set_role(self, sender: str, room_id: str, target: str, role: str) -> str:
        """Give `target` the level of `role`; the event ID of the power levels written."""
        level = self._ladder.level_of(role)
        if not types.is_user_id(target):
            raise invalid_param(f"{target!r} is not a valid user ID.")
        async with self._pool.acquire() as conn:
            await self._require_joined(conn, room_id, sender)
            if not await account_store.user_exists(conn, target):
                raise not_found(f"User {target} not found.")
            if await room_store.state_event(conn, room_id, types.POWER_LEVELS, "") is None:
                # The first power levels event only has to be well formed (rule 9.4):
                # writing one here would let anyone in such a room make themselves owner.
                raise forbidden("This room has no power levels to give roles in.")
        return await self._rooms.edit_state(
            sender,
            room_id,
            types.POWER_LEVELS,
            "",
            lambda content: with_user_level(content, target, level),
        )

    @staticmethod
    async def _require_joined(conn: asyncpg.Connection, room_id: str, user_id: str) -> None:
        if not await room_store.room_exists(conn, room_id):
            raise not_found("Unknown room.")
        current = await room_store.membership(conn, room_id, user_id)
        if current is None or current.membership != "join":
            raise forbidden("You are not in this room.")

    @staticmethod
    async def _levels(conn: asyncpg.Connection, room_id: str) -> PowerLevels:
        """The room's levels, with a version 12 room's creators above them all."""
        return PowerLevels.of_state(
            await room_store.state_event(conn, room_id, types.CREATE, ""),
            await room_store.state_event(conn, room_id, types.POWER_LEVELS, ""),
        )
