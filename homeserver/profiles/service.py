"""Profiles: a user's display name and avatar, and their m.room.member events in every room.

A change is the `com.linkchat.profile` fact in the owner's account chain plus,
as Synapse does, a new join event carrying the new profile in every room they
are joined to, appended as one group. Every draft is a StateEdit naming the
event it was computed from, so a concurrent change (the other profile field,
a leave while the rooms are updated) refuses the group and it is rebuilt from
a fresh read: a profile change never loses another, nor rejoins a room.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from homeserver.errors import MatrixError, forbidden, invalid_param, missing_param, not_found
from homeserver.events import types
from homeserver.events.content.profile import (
    MAX_AVATAR_URL_LENGTH,
    MAX_DISPLAYNAME_LENGTH,
    ProfileContent,
)
from homeserver.events.model import STATE_CHANGED, Draft, Event, StateEdit
from homeserver.log.appender import Appender
from homeserver.log.edits import retry_edit
from homeserver.media.uris import is_valid_mxc
from homeserver.store import profiles as profile_store
from homeserver.store import rooms as room_store

log = logging.getLogger(__name__)

DISPLAYNAME = "displayname"
AVATAR_URL = "avatar_url"
FIELDS = (DISPLAYNAME, AVATAR_URL)
# A refused group is rebuilt from a fresh read this many times at most.
MAX_ATTEMPTS = 10


def check_user_id(user_id: str) -> None:
    if not types.is_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a valid user ID.")


def checked_value(field: str, value: object) -> str | None:
    """A new value of a profile field, or None to unset it ("" unsets, as in Synapse)."""
    if field not in FIELDS:
        raise invalid_param(f"Unknown profile field {field!r}: only displayname and avatar_url.")
    if value is None:
        raise invalid_param(f'{field} may not be null; set it to "" to remove it.')
    if not isinstance(value, str):
        raise invalid_param(f"{field} must be a string.")
    if value == "":
        return None
    limit = MAX_DISPLAYNAME_LENGTH if field == DISPLAYNAME else MAX_AVATAR_URL_LENGTH
    if len(value) > limit:
        raise invalid_param(f"{field} may be at most {limit} characters long.")
    if field == AVATAR_URL and not is_valid_mxc(value):
        raise invalid_param("avatar_url must be an mxc:// URI.")
    return value


def _member_update(user_id: str, member: Event, fields: dict[str, str]) -> Draft | None:
    """The join event showing `fields` in the member's room; None if it already does."""
    if all(member.content.get(field) == fields.get(field) for field in FIELDS):
        return None
    return StateEdit(
        member.room_id,
        user_id,
        types.MEMBER,
        {"membership": "join", **fields},
        state_key=user_id,
        replaces=member.event_id,
    )


@dataclass(eq=False)
class ProfileService:
    pool: asyncpg.Pool
    appender: Appender

    async def profile(self, user_id: str) -> ProfileContent:
        """GET /profile/{userId}: 404 for a user this server does not know."""
        check_user_id(user_id)
        async with self.pool.acquire() as conn:
            row = await profile_store.profile(conn, user_id)
        if row is None:
            raise not_found("Profile not found.")
        return ProfileContent(displayname=row.displayname, avatar_url=row.avatar_url)

    async def set_field(
        self, requester: str, user_id: str, field: str, body: Mapping[str, object]
    ) -> None:
        """PUT /profile/{userId}/{field} with `body` {field: value}: only by the owner;
        the rooms they are joined to show the change."""
        check_user_id(user_id)
        if requester != user_id:
            raise forbidden("You may only change your own profile.")
        if field in FIELDS and field not in body:
            raise missing_param(f"The body must give the new {field}.")
        await self._change(user_id, field, checked_value(field, body.get(field)))

    async def _change(self, user_id: str, field: str, value: str | None) -> None:
        async def attempt() -> None:
            # One snapshot: a profile read before a change committed and a fact ID
            # read after it would let this edit overwrite that change unseen.
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                current = await profile_store.profile(conn, user_id)
                fact_id = await profile_store.profile_fact_id(conn, user_id)
                members = await profile_store.joined_member_events(conn, user_id)
            if current is None:
                raise not_found("Profile not found.")
            before = ProfileContent(displayname=current.displayname, avatar_url=current.avatar_url)
            fields = {**before.fields(), field: value}
            wanted = {key: text for key, text in fields.items() if text is not None}
            fact = StateEdit(
                user_id, user_id, types.PROFILE, wanted, state_key="", replaces=fact_id
            )
            updates = [
                draft
                for member in members
                if (draft := _member_update(user_id, member, wanted)) is not None
            ]
            if wanted == before.fields() and not updates:
                return
            try:
                await self.appender.append_group([fact, *updates])
                return
            except MatrixError as refused:
                if refused.errcode == STATE_CHANGED or not updates:
                    raise
            # A room refused the join event (its join rule lets nobody join, say):
            # the profile is written alone, then each room on its own.
            await self.appender.append(fact)
            for member in members:
                await self._update_room(user_id, member.room_id)

        await retry_edit(attempt, "Your profile")

    async def _update_room(self, user_id: str, room_id: str) -> None:
        """Show the current profile in one room, if the user is still joined to it."""
        for _ in range(MAX_ATTEMPTS):
            async with self.pool.acquire() as conn:
                member = await room_store.state_event(conn, room_id, types.MEMBER, user_id)
                row = await profile_store.profile(conn, user_id)
            if member is None or member.content.get("membership") != "join" or row is None:
                return
            fields = ProfileContent(displayname=row.displayname, avatar_url=row.avatar_url)
            draft = _member_update(user_id, member, fields.fields())
            if draft is None:
                return
            try:
                await self.appender.append(draft)
                return
            except MatrixError as refused:
                if refused.errcode != STATE_CHANGED:
                    log.info("profile of %s not shown in %s: %s", user_id, room_id, refused.error)
                    return

    async def set_for_admin(self, user_id: str, field: str, value: object) -> None:
        """A server admin sets a field of `user_id`'s profile ("" unsets it), shown in every
        room they are joined to, as their own change would be."""
        await self._change(user_id, field, checked_value(field, value))
