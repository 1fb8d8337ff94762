"""Mutes: a user held below a room's `events_default` for a while, through the power levels.

Muting is a power-levels change like any other (the muted user's entry lowered
below `events_default`), sent by the muter, so the Matrix rules decide it: the
muter needs the level of `m.room.power_levels` and more than the user's level.
With it, in one append group, goes a `com.linkchat.mute` state fact keyed by
the user (behind an underscore): the level they hold while muted, the level an unmute gives back,
when it ends and why (events/content/mutes.py). Both are StateEdits
(read-modify-write, refused under the lock when either changed meanwhile and
then computed again), so a mute never loses a concurrent power-levels change.

An unmute puts the user back at the level they had, if they still hold the
muted level (if someone changed it meanwhile, that decision stands), and
lifts the fact (`{}`). When a mute's time runs out, the expiry follower
(moderation/mute_expiry.py) unmutes in the name of the muter, whom the mute's
duration speaks for; a muter who has since lost the power leaves the mute to
someone who has it (it stays listed, overdue).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.content.mutes import MuteContent, mute_state_key, parse_mute
from homeserver.events.model import Event, JsonDict, StateEdit
from homeserver.log.appender import Appender
from homeserver.log.edits import retry_edit
from homeserver.roles.service import with_user_level
from homeserver.rooms.access import room_access
from homeserver.rooms.power_levels import PowerLevels
from homeserver.rooms.service import STATE_EDIT_ATTEMPTS
from homeserver.store import accounts as account_store
from homeserver.store import mutes as mute_store
from homeserver.store import rooms as room_store
from homeserver.store.mutes import MuteRow

# The longest mute with an end: ten years (longer: mute without a duration).
MAX_DURATION_MS = 10 * 366 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Mute:
    user_id: str
    muted_by: str
    muted_ts: int
    expires_ts: int | None
    reason: str | None

    @classmethod
    def of_row(cls, row: MuteRow) -> Mute:
        return cls(row.user_id, row.muted_by, row.muted_ts, row.expires_ts, row.reason)

    def as_json(self) -> JsonDict:
        shown: JsonDict = {
            "user_id": self.user_id,
            "muted_by": self.muted_by,
            "muted_ts": self.muted_ts,
            "expires_ts": self.expires_ts,
        }
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True, slots=True)
class _Current:
    """What a mute or unmute is computed from: the room's power levels and the user's
    mute fact, as they are now."""

    levels_event: Event
    mute_event: Event | None

    @property
    def levels(self) -> PowerLevels:
        return PowerLevels.from_content(self.levels_event.content)

    @property
    def mute(self) -> MuteContent | None:
        return parse_mute(self.mute_event.content) if self.mute_event is not None else None


def _require_power(levels: PowerLevels, sender: str, over: int) -> None:
    """What the Matrix rules ask of one who changes a user's level, asked first so the
    answer says what is missing: the level of m.room.power_levels, and more than `over`."""
    level = levels.user_level(sender)
    if level < levels.level_for_event(types.POWER_LEVELS, True) or level <= over:
        raise forbidden("You do not have the power to change this user's power level.")


@dataclass(eq=False)
class MuteService:
    pool: asyncpg.Pool
    appender: Appender
    _: KW_ONLY
    clock: Callable[[], float] = time.time

    async def mute(
        self, muter: str, room_id: str, user_id: str, duration_ms: int | None, reason: str | None
    ) -> Mute:
        """Mute `user_id` in the room, for `duration_ms` (None: until unmuted). Muting one
        already muted sets the new end and reason and keeps the level to give back."""
        if user_id == muter:
            raise invalid_param("You cannot mute yourself.")
        if duration_ms is not None and not 1 <= duration_ms <= MAX_DURATION_MS:
            raise invalid_param(f"duration_ms must be between 1 and {MAX_DURATION_MS}.")

        async def attempt() -> Mute:
            current = await self._current(muter, room_id, user_id)
            levels, existing = current.levels, current.mute
            level = levels.user_level(user_id)
            # A mute whose level someone changed meanwhile is over: start afresh.
            previous = existing.previous_level if existing and existing.level == level else level
            _require_power(levels, muter, previous)
            muted_level = min(level, levels.events_default - 1)
            now_ms = int(self.clock() * 1000)
            content: JsonDict = {"level": muted_level, "previous_level": previous}
            if duration_ms is not None:
                content["expires_ts"] = now_ms + duration_ms
            if reason is not None:
                content["reason"] = reason
            drafts = []
            if muted_level != level:
                drafts.append(self._levels_edit(muter, current, user_id, muted_level))
            drafts.append(self._mute_edit(muter, current, user_id, content))
            events = await self.appender.append_group(drafts)
            return Mute(
                user_id, muter, events[-1].origin_server_ts, content.get("expires_ts"), reason
            )

        return await retry_edit(attempt, "The power levels", attempts=STATE_EDIT_ATTEMPTS)

    async def unmute(
        self, sender: str, room_id: str, user_id: str, *, only: str | None = None
    ) -> bool:
        """Lift `user_id`'s mute; whether it was lifted now. `only` (a mute fact's event
        ID): lift that mute only, not one made since (the expiry of an earlier one)."""

        async def attempt() -> bool:
            current = await self._current(sender, room_id, user_id)
            existing = current.mute
            if existing is None or current.mute_event is None:
                raise not_found("This user is not muted.")
            if only is not None and current.mute_event.event_id != only:
                return False
            levels = current.levels
            _require_power(levels, sender, existing.previous_level)
            drafts = []
            if levels.user_level(user_id) == existing.level != existing.previous_level:
                drafts.append(self._levels_edit(sender, current, user_id, existing.previous_level))
            drafts.append(self._mute_edit(sender, current, user_id, {}))
            await self.appender.append_group(drafts)
            return True

        return await retry_edit(attempt, "The power levels", attempts=STATE_EDIT_ATTEMPTS)

    async def mutes(self, viewer: str, room_id: str) -> list[Mute]:
        """The room's mutes in force, for one who may read its current state: a member,
        or anyone for a world_readable room (rooms/access.py); else 403."""
        async with self.pool.acquire() as conn:
            access = await room_access(conn, viewer, room_id)
            access.require_readable()
            if access.state_position is not None:
                raise forbidden("You are no longer in this room.")
            rows = await mute_store.room_mutes(conn, room_id)
        return [Mute.of_row(row) for row in rows]

    async def _current(self, sender: str, room_id: str, user_id: str) -> _Current:
        async with self.pool.acquire() as conn:
            if not await room_store.room_exists(conn, room_id):
                raise not_found("Unknown room.")
            membership = await room_store.membership(conn, room_id, sender)
            if membership is None or membership.membership != "join":
                raise forbidden("You are not in this room.")
            if not await account_store.user_exists(conn, user_id):
                raise not_found(f"User {user_id} not found.")
            levels_event = await room_store.state_event(conn, room_id, types.POWER_LEVELS, "")
            mute_event = await room_store.state_event(
                conn, room_id, types.MUTE, mute_state_key(user_id)
            )
        if levels_event is None:
            # As for roles: the first power levels event only has to be well formed, so
            # writing one here would let anyone in such a room take any level.
            raise forbidden("This room has no power levels to mute in.")
        return _Current(levels_event, mute_event)

    @staticmethod
    def _levels_edit(sender: str, current: _Current, user_id: str, level: int) -> StateEdit:
        event = current.levels_event
        content = with_user_level(event.content, user_id, level)
        return StateEdit(
            event.room_id, sender, types.POWER_LEVELS, content, "", replaces=event.event_id
        )

    @staticmethod
    def _mute_edit(sender: str, current: _Current, user_id: str, content: JsonDict) -> StateEdit:
        room_id = current.levels_event.room_id
        replaces = current.mute_event.event_id if current.mute_event is not None else None
        key = mute_state_key(user_id)
        return StateEdit(room_id, sender, types.MUTE, content, key, replaces=replaces)
