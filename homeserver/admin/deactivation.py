"""Deactivating an account: the one implementation behind POST /account/deactivate and the
admin API's POST /_synapse/admin/v1/deactivate/{userId} (and PUT .../users `deactivated`).

In this order, so that each step holds even if a later one fails (deactivating again
finishes the job):

1. the account fact says `deactivated` (and `erased`): from the commit on, no access
   token of the account is accepted and no login is;
2. the password is forgotten (login answers 403 M_USER_DEACTIVATED, as Synapse);
3. every device is removed and every access token dies, and the pushers with them;
4. the user leaves every room they are joined to, invited to or knocking at;
5. the third-party IDs are removed;
6. with `erase`, the profile is cleared, and rooms/access.py shows the user's messages
   only to those who were joined when they were sent (Synapse's erasure).

What the log holds of the account (its account data, receipts, messages) stays:
the log is append-only, and `audit replay` still rebuilds every projection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from homeserver.accounts.service import AccountService
from homeserver.admin.threepids import AdminThreepids
from homeserver.errors import MatrixError, not_found
from homeserver.events import types
from homeserver.events.model import StateEdit
from homeserver.log.appender import Appender
from homeserver.log.edits import retry_edit
from homeserver.profiles.service import AVATAR_URL, DISPLAYNAME, ProfileService
from homeserver.rooms.service import RoomService
from homeserver.store import admin_users as user_store
from homeserver.store import rooms as room_store

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Deactivation:
    pool: asyncpg.Pool
    appender: Appender
    accounts: AccountService
    rooms: RoomService
    profiles: ProfileService
    threepids: AdminThreepids

    async def _set_status(self, user_id: str, *, deactivated: bool, erased: bool) -> None:
        """Edit the account fact to say `deactivated` and `erased` (if it does not already)."""

        async def attempt() -> None:
            async with self.pool.acquire() as conn:
                fact = await room_store.state_event(conn, user_id, types.ACCOUNT, "")
            if fact is None:
                raise not_found("User not found")
            content = dict(fact.content)
            if (content.get("deactivated") is True, content.get("erased") is True) == (
                deactivated,
                erased,
            ):
                return
            content.update(deactivated=deactivated, erased=erased)
            await self.appender.append(
                StateEdit(
                    user_id, user_id, types.ACCOUNT, content, state_key="", replaces=fact.event_id
                )
            )

        await retry_edit(attempt, "The account")

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        """Deactivate `user_id` (see the module's steps); an erased account stays erased."""
        async with self.pool.acquire() as conn:
            row = await user_store.user(conn, user_id, [])
        if row is None:
            raise not_found("User not found")
        await self._set_status(user_id, deactivated=True, erased=erase or row.erased)
        await self.accounts.forget_password(user_id)
        await self.accounts.end_sessions(user_id)
        async with self.pool.acquire() as conn:
            rooms = await user_store.rooms_in(conn, user_id)
        for room_id, membership in rooms:
            try:
                await self.rooms.leave(user_id, room_id, None)
            except MatrixError as refused:
                log.warning(
                    "deactivating %s: could not leave %s (%s): %s",
                    user_id,
                    room_id,
                    membership,
                    refused.error,
                )
        await self.threepids.replace(user_id, [])
        if erase:
            for field in (DISPLAYNAME, AVATAR_URL):
                await self.profiles.set_for_admin(user_id, field, "")

    async def reactivate(self, user_id: str) -> None:
        """The account may be used again (once it has a password): no longer erased either."""
        await self._set_status(user_id, deactivated=False, erased=False)
