"""Devices: their accounts and rooms, login tokens, grants, retirement, command lists.

A device is an account of its own (`@<owner>.dev.<random>:server`, kind
"device") with a room of its own, made in one append group across three
chains: the device's account fact, the owner's `owned_device` fact, and the
device room (m.room.create `type: com.linkchat.device` naming the device and
its owner), where the owner is at 100, the device and the server's system
user at DEVICE_LEVEL, and commands need the command level. Granting a user
puts them at the command level and invites them; revoking puts them back to
the default level and kicks them. Commands, results and capabilities are
ordinary room events sent with the Matrix API; the rules that decide them
are device_control/rules.py, under the append lock.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from homeserver.accounts.service import AccountService, hash_token
from homeserver.clock import now_ms
from homeserver.device_control.rules import DeviceRoomCreation, system_user
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.model import Draft, JsonDict
from homeserver.log.appender import Appender
from homeserver.store import device_control as device_store
from homeserver.store import rooms as room_store

# The level of the device and of the system user in a device room: enough for
# results, capabilities and expiries, below any command level (at least 11).
DEVICE_LEVEL = 10
OWNER_LEVEL = 100
ROOM_VERSION = "11"

# ?status= of the commands list, and the statuses each one covers.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "pending": ("pending",),
    "running": ("accepted", "running"),
    "done": ("succeeded", "failed", "rejected"),
    "expired": ("expired",),
}
MAX_COMMANDS_PAGE = 1000


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    login_token_ttl_seconds: int
    command_level: int


class RoomMembership(Protocol):
    """What this service asks of the room service (rooms/service.py's RoomService)."""

    async def edit_state(
        self,
        sender: str,
        room_id: str,
        event_type: str,
        state_key: str,
        edit: Callable[[JsonDict], JsonDict],
    ) -> str: ...

    async def invite(self, sender: str, room_id: str, target: str, reason: str | None) -> None: ...

    async def kick(self, sender: str, room_id: str, target: str, reason: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class LoginToken:
    token: str
    expires_in_ms: int


@dataclass(frozen=True, slots=True)
class DeviceCreated:
    device_user_id: str
    room_id: str
    login_token: LoginToken


@dataclass(frozen=True, slots=True)
class Device:
    device_user_id: str
    room_id: str
    display_name: str
    created_ts: int
    grants: list[str]


@dataclass(frozen=True, slots=True)
class CommandPage:
    commands: list[device_store.CommandRow]
    results: dict[str, list[device_store.ResultRow]]
    next_batch: str | None


def _level(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def command_level_of(levels: Mapping[str, Any], default: int) -> int:
    events = levels.get("events")
    found = events.get(types.DEVICE_COMMAND) if isinstance(events, Mapping) else None
    if found is not None:
        return _level(found, default)
    return _level(levels.get("events_default"), 0)


def user_level_of(levels: Mapping[str, Any], user_id: str) -> int:
    users = levels.get("users")
    found = users.get(user_id) if isinstance(users, Mapping) else None
    return _level(found, _level(levels.get("users_default"), 0))


def with_user_level(levels: Mapping[str, Any], user_id: str, level: int | None) -> JsonDict:
    """The power levels with `user_id` at `level` (None: back to the default), all else kept."""
    raw = levels.get("users")
    users = dict(raw) if isinstance(raw, Mapping) else {}
    if level is None:
        users.pop(user_id, None)
    else:
        users[user_id] = level
    return {**levels, "users": users}


def device_power_levels(owner: str, device: str, system: str, command_level: int) -> JsonDict:
    return {
        "users": {owner: OWNER_LEVEL, device: DEVICE_LEVEL, system: DEVICE_LEVEL},
        "users_default": 0,
        "events_default": 0,
        "state_default": OWNER_LEVEL,
        "invite": OWNER_LEVEL,
        "kick": OWNER_LEVEL,
        "ban": OWNER_LEVEL,
        "redact": OWNER_LEVEL,
        "events": {
            types.POWER_LEVELS: OWNER_LEVEL,
            types.NAME: OWNER_LEVEL,
            types.TOPIC: OWNER_LEVEL,
            types.HISTORY_VISIBILITY: OWNER_LEVEL,
            types.ENCRYPTION: OWNER_LEVEL,
            types.DEVICE_COMMAND: command_level,
            types.DEVICE_RESULT: DEVICE_LEVEL,
            types.DEVICE_CAPABILITIES: DEVICE_LEVEL,
            types.DEVICE_COMMAND_EXPIRED: DEVICE_LEVEL,
        },
        "notifications": {"room": OWNER_LEVEL},
    }


def _random_suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


@dataclass(eq=False)
class DeviceService:
    pool: asyncpg.Pool
    appender: Appender
    accounts: AccountService
    rooms: RoomMembership
    server_name: str
    settings: DeviceSettings
    system_user: str = field(init=False)

    def __post_init__(self) -> None:
        self.system_user = system_user(self.server_name)

    # Creating, listing, retiring

    async def create(self, owner: str, display_name: str) -> DeviceCreated:
        async with self.pool.acquire() as conn:
            kind = await device_store.user_kind(conn, owner)
        if kind != "user":
            raise forbidden("Only a user account may own devices.")
        owner_localpart = owner[1:].partition(":")[0][:64]
        for _ in range(3):
            device = f"@{owner_localpart}.dev.{_random_suffix()}:{self.server_name}"
            room_id = "!" + "".join(secrets.choice(string.ascii_letters) for _ in range(18))
            room_id += ":" + self.server_name
            try:
                await self.appender.append_group(
                    self._creation_drafts(owner, device, room_id, display_name)
                )
            except MatrixError as taken:
                if taken.errcode == "M_USER_IN_USE":
                    continue
                raise
            return DeviceCreated(device, room_id, await self._issue_login_token(device))
        raise MatrixError(500, "M_UNKNOWN", "Could not pick a free device user ID; try again.")

    def _creation_drafts(
        self, owner: str, device: str, room_id: str, display_name: str
    ) -> list[Draft]:
        now = now_ms()
        system = self.system_user

        def state(sender: str, event_type: str, content: JsonDict, key: str = "") -> Draft:
            return Draft(room_id, sender, event_type, content, state_key=key)

        def member(sender: str, target: str, membership: str, name: str) -> Draft:
            content = {"membership": membership, "displayname": name}
            return state(sender, types.MEMBER, content, target)

        owner_name = owner[1:].partition(":")[0]
        return [
            Draft(
                device,
                device,
                types.ACCOUNT,
                {"kind": "device", "owner": owner, "created_ts": now, "deactivated": False},
                state_key="",
            ),
            Draft(
                owner,
                owner,
                types.OWNED_DEVICE,
                {"room_id": room_id, "display_name": display_name, "created_ts": now},
                state_key=device,
            ),
            DeviceRoomCreation(
                room_id,
                owner,
                types.CREATE,
                {
                    "type": types.DEVICE_ROOM_TYPE,
                    "device_user_id": device,
                    "owner_user_id": owner,
                    "room_version": ROOM_VERSION,
                },
                state_key="",
            ),
            member(owner, owner, "join", owner_name),
            state(
                owner,
                types.POWER_LEVELS,
                device_power_levels(owner, device, system, self.settings.command_level),
            ),
            state(owner, types.JOIN_RULES, {"join_rule": "invite"}),
            state(owner, types.HISTORY_VISIBILITY, {"history_visibility": "shared"}),
            state(owner, types.GUEST_ACCESS, {"guest_access": "forbidden"}),
            state(owner, types.NAME, {"name": display_name}),
            member(owner, device, "invite", display_name),
            member(device, device, "join", display_name),
            member(owner, system, "invite", "LinkChat"),
            member(system, system, "join", "LinkChat"),
        ]

    async def _issue_login_token(self, device_user_id: str) -> LoginToken:
        token = "lct_" + secrets.token_urlsafe(32)
        ttl_ms = self.settings.login_token_ttl_seconds * 1000
        now = now_ms()
        async with self.pool.acquire() as conn:
            await device_store.insert_login_token(
                conn, hash_token(token), device_user_id, now + ttl_ms, now
            )
        return LoginToken(token, ttl_ms)

    async def new_login_token(self, owner: str, device_user_id: str) -> LoginToken:
        await self._owned(owner, device_user_id)
        return await self._issue_login_token(device_user_id)

    async def devices(self, owner: str) -> list[Device]:
        async with self.pool.acquire() as conn:
            rows = await device_store.devices_of(conn, owner)
            found = []
            for row in rows:
                levels = await self._levels(conn, row.room_id)
                found.append(
                    Device(
                        row.device_user_id,
                        row.room_id,
                        row.display_name,
                        row.created_ts,
                        self._grants(row, levels),
                    )
                )
        return found

    def _grants(self, row: device_store.DeviceRow, levels: Mapping[str, Any]) -> list[str]:
        needed = command_level_of(levels, self.settings.command_level)
        users = levels.get("users")
        named = users if isinstance(users, Mapping) else {}
        return sorted(
            user
            for user in named
            if user not in (row.owner_id, row.device_user_id, self.system_user)
            and user_level_of(levels, user) >= needed
        )

    async def retire(self, owner: str, device_user_id: str) -> None:
        """The device's tokens die, it leaves its room and its owner's list; its log stays."""
        device = await self._owned(owner, device_user_id)
        # Its tokens die first: whatever happens next, the agent can no longer act.
        async with self.pool.acquire() as conn:
            await device_store.delete_login_tokens(conn, device.device_user_id)
        await self.accounts.end_sessions(device.device_user_id)
        async with self.pool.acquire() as conn:
            current = await room_store.membership(conn, device.room_id, device.device_user_id)
        drafts = [Draft(owner, owner, types.OWNED_DEVICE, {}, state_key=device.device_user_id)]
        if current is not None and current.membership in ("join", "invite"):
            drafts.append(
                Draft(
                    device.room_id,
                    device.device_user_id,
                    types.MEMBER,
                    {"membership": "leave", "reason": "device retired"},
                    state_key=device.device_user_id,
                )
            )
        await self.appender.append_group(drafts)

    # Grants

    async def grant(self, owner: str, device_user_id: str, user_id: str) -> None:
        """`user_id` may command the device: the command level, and an invitation."""
        device = await self._owned(owner, device_user_id)
        self._check_grantee(device, user_id)
        async with self.pool.acquire() as conn:
            if await device_store.user_kind(conn, user_id) != "user":
                raise not_found(f"User {user_id} not found.")

        def granted(levels: JsonDict) -> JsonDict:
            level = command_level_of(levels, self.settings.command_level)
            return with_user_level(levels, user_id, max(level, user_level_of(levels, user_id)))

        await self.rooms.edit_state(owner, device.room_id, types.POWER_LEVELS, "", granted)
        async with self.pool.acquire() as conn:
            current = await room_store.membership(conn, device.room_id, user_id)
        if current is None or current.membership not in ("join", "invite"):
            await self.rooms.invite(owner, device.room_id, user_id, "granted control of a device")

    async def revoke(self, owner: str, device_user_id: str, user_id: str) -> None:
        """`user_id` may no longer command the device: back to the default level, kicked."""
        device = await self._owned(owner, device_user_id)
        self._check_grantee(device, user_id)
        async with self.pool.acquire() as conn:
            levels = await self._levels(conn, device.room_id)
            current = await room_store.membership(conn, device.room_id, user_id)
        users = levels.get("users")
        named = isinstance(users, Mapping) and user_id in users
        present = current is not None and current.membership in ("join", "invite")
        if not named and not present:
            raise not_found(f"{user_id} has no grant on this device.")
        if named:
            await self.rooms.edit_state(
                owner,
                device.room_id,
                types.POWER_LEVELS,
                "",
                lambda levels: with_user_level(levels, user_id, None),
            )
        if present:
            await self.rooms.kick(owner, device.room_id, user_id, "device control revoked")

    def _check_grantee(self, device: device_store.DeviceRow, user_id: str) -> None:
        if not types.is_account_chain(user_id) or ":" not in user_id:
            raise invalid_param(f"{user_id!r} is not a user ID.")
        if user_id in (device.owner_id, device.device_user_id, self.system_user):
            raise invalid_param("Grants are for other users than the owner and the device.")

    # Commands

    async def commands(
        self,
        caller: str,
        device_user_id: str,
        status: str | None,
        after_position: int,
        limit: int,
    ) -> CommandPage:
        """The device's commands in log order with their latest status and results.

        For the owner, the device itself (an agent reads its pending commands
        when it starts) and the users granted control of it.
        """
        statuses: Sequence[str] | None = None
        if status is not None:
            if status not in STATUS_FILTERS:
                raise invalid_param(f"status must be one of {', '.join(STATUS_FILTERS)}.")
            statuses = STATUS_FILTERS[status]
        if not 1 <= limit <= MAX_COMMANDS_PAGE:
            raise invalid_param(f"limit must be between 1 and {MAX_COMMANDS_PAGE}.")
        device = await self._device(device_user_id)
        async with self.pool.acquire() as conn:
            if caller not in (device.owner_id, device.device_user_id):
                await self._require_granted(conn, device, caller)
            rows = await device_store.commands(
                conn, device.room_id, statuses, after_position, limit
            )
            results = await device_store.results_of(
                conn, device.room_id, [row.command_id for row in rows]
            )
        next_batch = str(rows[-1].stream_position) if len(rows) == limit else None
        return CommandPage(rows, results, next_batch)

    async def _require_granted(
        self, conn: asyncpg.Connection, device: device_store.DeviceRow, caller: str
    ) -> None:
        current = await room_store.membership(conn, device.room_id, caller)
        levels = await self._levels(conn, device.room_id)
        needed = command_level_of(levels, self.settings.command_level)
        if (
            current is None
            or current.membership != "join"
            or user_level_of(levels, caller) < needed
        ):
            raise forbidden("Only the device's owner, the device and those granted control.")

    # Reading

    async def _device(self, device_user_id: str) -> device_store.DeviceRow:
        async with self.pool.acquire() as conn:
            row = await device_store.device(conn, device_user_id)
        if row is None:
            raise not_found(f"No device {device_user_id}.")
        return row

    async def _owned(self, owner: str, device_user_id: str) -> device_store.DeviceRow:
        row = await self._device(device_user_id)
        if row.owner_id != owner:
            raise forbidden("Only the device's owner may do this.")
        return row

    @staticmethod
    async def _levels(conn: asyncpg.Connection, room_id: str) -> Mapping[str, Any]:
        event = await room_store.state_event(conn, room_id, types.POWER_LEVELS, "")
        return event.content if event is not None else {}
