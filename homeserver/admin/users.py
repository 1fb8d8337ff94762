"""User accounts for server admins: list, look up, create and modify (Synapse's user admin API).

Each change goes through the service that owns it (accounts/, profiles/, the
admin flag) and is recorded in the audit trail after it is made, as `user.create`
or `user.modify` with the names of the fields changed (never a password).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.accounts.service import AccountService
from homeserver.accounts.service import Device as Device
from homeserver.admin.admins import ServerAdmins
from homeserver.admin.audit import AuditTrail
from homeserver.admin.deactivation import Deactivation
from homeserver.admin.threepids import AdminThreepids, ThreepidRow
from homeserver.errors import invalid_param, missing_param, not_found
from homeserver.profiles.service import AVATAR_URL, DISPLAYNAME, ProfileService
from homeserver.store import admin_users as user_store
from homeserver.store.admin_users import UploadRow as UploadRow
from homeserver.store.admin_users import UserRow as UserRow

MAX_PAGE = 1000

# Which users a page lists (for the handlers, which do not import store/).
UserQuery = user_store.UserQuery


@dataclass(frozen=True, slots=True)
class UserChanges:
    """What PUT /_synapse/admin/v2/users/{userId} asks; None leaves a field as it is."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    avatar_url: str | None = None
    threepids: Sequence[tuple[str, str]] | None = None  # canonical (medium, address)
    admin: bool | None = None
    deactivated: bool | None = None


@dataclass(frozen=True, slots=True)
class UserDetails:
    row: UserRow
    threepids: list[ThreepidRow]


@dataclass(eq=False)
class UserAdmin:
    pool: asyncpg.Pool
    accounts: AccountService
    profiles: ProfileService
    admins: ServerAdmins
    trail: AuditTrail
    threepids: AdminThreepids
    deactivation: Deactivation
    server_name: str

    def check_local(self, user_id: str) -> None:
        if user_id.partition(":")[2] != self.server_name:
            raise invalid_param("This endpoint can only be used with local users")

    async def users(
        self, query: UserQuery, offset: int, limit: int
    ) -> tuple[list[UserRow], int, int | None]:
        """A page of users, how many `query` selects, and the next page's offset (None: last)."""
        if query.order_by not in user_store.ORDER_COLUMNS:
            raise invalid_param(f"Unknown order_by {query.order_by!r}.")
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_param(f"limit must be between 1 and {MAX_PAGE}")
        async with self.pool.acquire() as conn:
            rows, total = await user_store.users(conn, query, self.admins.configured, offset, limit)
        following = offset + len(rows)
        return rows, total, following if following < total else None

    async def user(self, user_id: str) -> UserDetails:
        self.check_local(user_id)
        async with self.pool.acquire() as conn:
            row = await user_store.user(conn, user_id, self.admins.configured)
        if row is None:
            raise not_found("User not found")
        return UserDetails(row, await self.threepids.of_user(user_id))

    async def put_user(
        self, admin: str, user_id: str, changes: UserChanges, reason: str | None
    ) -> tuple[bool, UserDetails]:
        """Create the account if it does not exist, then apply `changes`; (created, user)."""
        self.check_local(user_id)
        async with self.pool.acquire() as conn:
            before = await user_store.user(conn, user_id, [])
        created = before is None
        reactivate = before is not None and before.deactivated and changes.deactivated is False
        if reactivate and changes.password is None:
            # Deactivation forgot the password: without a new one nobody could log in.
            raise missing_param("Must provide a password to re-activate an account.")
        changed: list[str] = []
        if created:
            await self.accounts.create_account(user_id, changes.password)
        if reactivate:
            await self.deactivation.reactivate(user_id)
            changed.append("deactivated")
        if changes.password is not None and not created:
            await self.accounts.set_password(
                user_id, changes.password, logout_devices=changes.logout_devices and not reactivate
            )
        if changes.password is not None:
            changed.append("password")
        for field, value in ((DISPLAYNAME, changes.displayname), (AVATAR_URL, changes.avatar_url)):
            if value is not None:
                await self.profiles.set_for_admin(user_id, field, value)
                changed.append(field)
        if changes.threepids is not None:
            await self.threepids.replace(user_id, changes.threepids)
            changed.append("threepids")
        if changes.deactivated and (before is None or not before.deactivated):
            await self.deactivation.deactivate(user_id, erase=False)
            changed.append("deactivated")
        details: dict[str, object] = {"changed": changed}
        if changes.password is not None and not created:
            details["logout_devices"] = changes.logout_devices
        if created or changed:
            await self.trail.record(
                admin,
                "user.create" if created else "user.modify",
                target=user_id,
                reason=reason,
                details=details,
            )
        wanted_admin = changes.admin if changes.admin is not None or not created else False
        if wanted_admin is not None and wanted_admin != await self.admins.is_admin(user_id):
            await self.admins.set_admin(admin, user_id, wanted_admin, reason)
        return created, await self.user(user_id)

    async def deactivate(self, admin: str, user_id: str, erase: bool, reason: str | None) -> None:
        """POST /_synapse/admin/v1/deactivate/{userId}: recorded as `user.deactivate`."""
        self.check_local(user_id)
        await self.deactivation.deactivate(user_id, erase=erase)
        await self.trail.record(
            admin, "user.deactivate", target=user_id, reason=reason, details={"erase": erase}
        )

    async def _existing(self, user_id: str) -> None:
        """404 unless `user_id` is an account of this server (400 for another server's)."""
        self.check_local(user_id)
        if not await self.admins.user_exists(user_id):
            raise not_found("User not found")

    async def devices(self, user_id: str) -> list[Device]:
        await self._existing(user_id)
        return await self.accounts.user_devices(user_id)

    async def device(self, user_id: str, device_id: str) -> Device:
        for device in await self.devices(user_id):
            if device.device_id == device_id:
                return device
        raise not_found("No device found")

    async def rename_device(
        self, admin: str, user_id: str, device_id: str, name: str | None, reason: str | None
    ) -> None:
        await self._existing(user_id)
        await self.accounts.rename_user_device(user_id, device_id, name)
        await self.trail.record(
            admin,
            "user.device.rename",
            target=user_id,
            reason=reason,
            details={"device_id": device_id},
        )

    async def delete_devices(
        self, admin: str, user_id: str, device_ids: list[str], reason: str | None
    ) -> None:
        """The devices go and their access tokens die; unknown ones are ignored (Synapse)."""
        await self._existing(user_id)
        known = {device.device_id for device in await self.accounts.user_devices(user_id)}
        gone = [device_id for device_id in dict.fromkeys(device_ids) if device_id in known]
        if not gone:
            return
        await self.accounts.remove_devices(user_id, gone)
        await self.trail.record(
            admin, "user.device.delete", target=user_id, reason=reason, details={"devices": gone}
        )

    async def reset_password(
        self, admin: str, user_id: str, password: str, logout_devices: bool, reason: str | None
    ) -> None:
        """POST /_synapse/admin/v1/reset_password: recorded as `user.reset_password`."""
        await self._existing(user_id)
        await self.accounts.set_password(user_id, password, logout_devices=logout_devices)
        await self.trail.record(
            admin,
            "user.reset_password",
            target=user_id,
            reason=reason,
            details={"logout_devices": logout_devices},
        )

    async def check_user(self, user_id: str) -> None:
        """400 for another server's user, 404 for an unknown one."""
        await self._existing(user_id)

    async def login_as(
        self, admin: str, user_id: str, valid_until_ms: int | None, reason: str | None
    ) -> str:
        """POST /_synapse/admin/v1/users/{userId}/login: a token to act as the user, for
        support; recorded as `user.login` (the token itself never is)."""
        await self._existing(user_id)
        if user_id == admin:
            raise invalid_param("Cannot use admin API to login as self")
        token = await self.accounts.support_token(user_id, valid_until_ms)
        await self.trail.record(
            admin,
            "user.login",
            target=user_id,
            reason=reason,
            details={"valid_until_ms": valid_until_ms} if valid_until_ms is not None else None,
        )
        return token

    async def memberships(self, user_id: str) -> dict[str, str]:
        await self._existing(user_id)
        async with self.pool.acquire() as conn:
            return await user_store.memberships(conn, user_id)

    async def uploads(
        self, user_id: str, order_by: str | None, forwards: bool | None, offset: int, limit: int
    ) -> tuple[list[UploadRow], int, int | None]:
        """A page of the user's uploads, how many in all, and the next page's offset.
        Neither order nor direction given: newest first, as Synapse."""
        await self._existing(user_id)
        if order_by is not None and order_by not in user_store.MEDIA_ORDER_COLUMNS:
            raise invalid_param(f"Unknown order_by {order_by!r}.")
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_param(f"limit must be between 1 and {MAX_PAGE}")
        if order_by is None and forwards is None:
            order_by, forwards = "created_ts", False
        async with self.pool.acquire() as conn:
            rows, total = await user_store.uploads(
                conn, user_id, order_by or "created_ts", forwards is not False, offset, limit
            )
        following = offset + len(rows)
        return rows, total, following if following < total else None
