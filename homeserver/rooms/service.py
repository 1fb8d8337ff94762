"""Rooms: creation, membership, state, sending, redaction and aliases.

Every change goes through the appender; the rules that decide it live in
rooms/auth.py and are applied there, under the append lock.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from homeserver.account_data.ignore import ignored_users
from homeserver.accounts.identifiers import localpart_of
from homeserver.errors import (
    CapabilityRefusal,
    MatrixError,
    bad_json,
    forbidden,
    invalid_param,
    not_found,
)
from homeserver.events import types
from homeserver.events.canonical import encode as canonical_json
from homeserver.events.content.profile import ProfileContent
from homeserver.events.model import STATE_CHANGED, Draft, Event, JsonDict, StateEdit, TxnKey
from homeserver.events.room_versions import KNOWN, of_create_content
from homeserver.events.sealing import reference_room_id, unsigned_pdu
from homeserver.log.appender import Appender
from homeserver.log.edits import retry_edit
from homeserver.rooms.access import room_access, visible_event
from homeserver.rooms.auth import SUPPORTED_ROOM_VERSIONS
from homeserver.rooms.power_levels import PowerLevels, creators_levels, room_creators
from homeserver.rooms.presets import PRESETS, default_power_levels, preset_state
from homeserver.rooms.rendering import EventRenderer, now_ms
from homeserver.rooms.shadow_bans import fake_event_id
from homeserver.store import accounts as account_store
from homeserver.store import events as event_store
from homeserver.store import history as history_store
from homeserver.store import profiles as profile_store
from homeserver.store import rooms as room_store
from homeserver.store import shadow_bans as shadow_ban_store

# The version of rooms created without `room_version`, unless the config says
# otherwise (rooms.default_room_version): see README "Room versions" for why 11.
DEFAULT_ROOM_VERSION = "11"

_ALIAS = re.compile(r"^#[^:\s]+:.+$")
# Keys of a member event that only the server sets, whatever a join's body says.
_SERVER_MEMBER_KEYS = frozenset(
    {"membership", "join_authorised_via_users_server", "third_party_invite", "third_party_signed"}
)
# Attempts of a state edit that keeps finding its state changed by others.
STATE_EDIT_ATTEMPTS = 20

# Power levels a room type (`type` in m.room.create content) gives a new room,
# from the preset's: a broadcast channel's (channels/presets.py), wired in app.py.
RoomTypeLevels = Mapping[str, Callable[[JsonDict], JsonDict]]
# What a capability checks of a client's draft before the append lock, where
# it would stall every writer: a device room's schemas and command args
# (device_control/checks.py), wired in app.py. It returns the draft, possibly
# carrying its verdict for the rules under the lock; such a draft may be
# refused with STATE_CHANGED when what it was checked against changed, and is
# then checked again.
DraftCheck = Callable[[Draft], Awaitable[Draft]]


@dataclass(frozen=True)
class RoomCreation:
    """A createRoom request, already shape-checked by the API layer."""

    visibility: str = "private"
    preset: str | None = None
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    room_version: str | None = None
    creation_content: JsonDict = field(default_factory=dict)
    initial_state: list[tuple[str, str, JsonDict]] = field(default_factory=list)
    is_direct: bool = False
    power_level_content_override: JsonDict | None = None


def _listed_aliases(content: Mapping[str, Any]) -> list[object]:
    """The aliases an m.room.canonical_alias content names (`alias` and `alt_aliases`)."""
    listed: list[object] = []
    if content.get("alias") is not None:
        listed.append(content["alias"])
    alt_aliases = content.get("alt_aliases", [])
    return listed + alt_aliases if isinstance(alt_aliases, list) else listed


@dataclass(eq=False)
class RoomService:
    pool: asyncpg.Pool
    appender: Appender
    server_name: str
    renderer: EventRenderer
    room_type_levels: RoomTypeLevels = field(default_factory=dict)
    draft_check: DraftCheck | None = None
    default_room_version: str = DEFAULT_ROOM_VERSION

    # Creation

    def new_room_id(self) -> str:
        local = "".join(secrets.choice(string.ascii_letters) for _ in range(18))
        return f"!{local}:{self.server_name}"

    def create_event(self, creator: str, content: Mapping[str, Any]) -> Draft:
        """The create event of a new room, its content completed for the version it names
        (`creator` before version 11, none after), with the room's ID: random, or in
        version 12 the event's own reference hash (so its time is fixed here)."""
        version = of_create_content(content)
        completed = dict(content)
        if version.implicit_creator:
            completed.pop("creator", None)
        else:
            completed["creator"] = creator
        if not version.room_ids_are_hashes:
            return Draft(self.new_room_id(), creator, types.CREATE, completed, state_key="")
        draft = Draft(
            "!", creator, types.CREATE, completed, state_key="", origin_server_ts=now_ms()
        )
        room_id = reference_room_id(unsigned_pdu(draft, None, version), version)
        return replace(draft, room_id=room_id)

    async def create_room(self, creator: str, request: RoomCreation) -> tuple[str, str | None]:
        preset = request.preset or (
            "public_chat" if request.visibility == "public" else "private_chat"
        )
        if preset not in PRESETS:
            raise MatrixError(400, "M_BAD_JSON", f"Unknown preset {preset!r}.")
        version = (
            request.room_version if request.room_version is not None else self.default_room_version
        )
        if version not in SUPPORTED_ROOM_VERSIONS:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {version!r} is not supported."
            )
        for invitee in request.invite:
            await self._require_local_user(invitee)
        if request.invite and await self._shadow_banned(creator):
            # A shadow-banned user's invites reach nobody (rooms/shadow_bans.py).
            request = replace(request, invite=[])
        create_content = {**request.creation_content, "room_version": version}
        if preset == "trusted_private_chat" and request.invite:
            if KNOWN[version].creators_have_unlimited_power:
                # As Synapse in version 12: the invitees the creator trusts as equals are
                # creators too (power levels could not give them the creator's power).
                named = create_content.get("additional_creators")
                earlier = named if isinstance(named, list) else []
                create_content["additional_creators"] = [
                    *earlier,
                    *(user for user in request.invite if user not in earlier),
                ]
        create = self.create_event(creator, create_content)
        room_id = create.room_id
        alias = None
        if request.room_alias_name is not None:
            alias = self._alias_from_name(request.room_alias_name)
            try:
                await self.appender.append(
                    Draft(alias, creator, types.ALIAS, {"room_id": room_id}, state_key="")
                )
            except MatrixError as taken:
                if taken.status == 409:
                    raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken.") from None
                raise
        try:
            await self.appender.append_group(
                await self._creation_drafts(create, preset, alias, request)
            )
        except MatrixError as refused:
            if alias is not None:
                await self.appender.append(Draft(alias, creator, types.ALIAS, {}, state_key=""))
            if refused.errcode == "M_FORBIDDEN" and not isinstance(refused, CapabilityRefusal):
                # The spec's createRoom: initial state the rules refuse is M_INVALID_ROOM_STATE.
                raise MatrixError(400, "M_INVALID_ROOM_STATE", refused.error) from None
            raise
        return room_id, alias

    async def create_direct_chat(self, creator: str, invitee: str) -> str:
        """A direct chat as Synapse and Element make one: the creator joined, the
        invitee invited with is_direct, both at power level 100 (trusted_private_chat)."""
        room_id, _ = await self.create_room(
            creator, RoomCreation(preset="trusted_private_chat", invite=[invitee], is_direct=True)
        )
        return room_id

    async def _creation_drafts(
        self, create: Draft, preset: str, alias: str | None, request: RoomCreation
    ) -> list[Draft]:
        room_id, creator = create.room_id, create.sender

        def state(event_type: str, content: JsonDict, state_key: str = "") -> Draft:
            return Draft(room_id, creator, event_type, content, state_key=state_key)

        power_levels = default_power_levels(creator, preset, request.invite)
        room_type = create.content.get("type")
        if isinstance(room_type, str) and room_type in self.room_type_levels:
            power_levels = self.room_type_levels[room_type](power_levels)
        creators = room_creators(creator, create.content)
        if creators:
            power_levels = creators_levels(power_levels, creators)
        if request.power_level_content_override:
            power_levels.update(request.power_level_content_override)
        drafts = [
            create,
            state(types.MEMBER, await self.member_content("join", creator), creator),
            state(types.POWER_LEVELS, power_levels),
        ]
        if alias is not None:
            drafts.append(state(types.CANONICAL_ALIAS, {"alias": alias}))
        drafts.extend(state(t, c) for t, c in preset_state(preset).items())
        drafts.extend(state(t, c, k) for t, k, c in request.initial_state)
        if request.name is not None:
            drafts.append(state(types.NAME, {"name": request.name}))
        if request.topic is not None:
            drafts.append(state(types.TOPIC, {"topic": request.topic}))
        if request.visibility == "public":
            # Published in the room directory (search/directory.py) with the room itself.
            drafts.append(state(types.ROOM_DIRECTORY, {"visibility": "public"}))
        for invitee in request.invite:
            content = await self.member_content("invite", invitee)
            if request.is_direct:
                content["is_direct"] = True
            drafts.append(state(types.MEMBER, content, invitee))
        return drafts

    async def member_content(self, membership: str, user_id: str) -> JsonDict:
        content: JsonDict = {"membership": membership}
        if membership in ("join", "invite"):
            # The member's current profile (homeserver/profiles), as Synapse does.
            async with self.pool.acquire() as conn:
                profile = await profile_store.profile(conn, user_id)
            if profile is None:
                content["displayname"] = localpart_of(user_id, self.server_name) or user_id
            else:
                shown = ProfileContent(
                    displayname=profile.displayname, avatar_url=profile.avatar_url
                )
                content.update(shown.fields())
        return content

    async def _require_local_user(self, user_id: str) -> None:
        if not types.is_user_id(user_id):
            raise invalid_param(f"{user_id!r} is not a valid user ID.")
        async with self.pool.acquire() as conn:
            if not await account_store.user_exists(conn, user_id):
                raise not_found(f"User {user_id} not found.")

    # Membership

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            async with self.pool.acquire() as conn:
                target = await room_store.alias_target(conn, room_id_or_alias)
            if target is None:
                raise not_found(f"Room alias {room_id_or_alias} not found.")
            return target[0]
        if not room_id_or_alias.startswith("!"):
            raise invalid_param(f"{room_id_or_alias!r} is not a room ID or alias.")
        return room_id_or_alias

    async def _require_room(self, room_id: str) -> None:
        async with self.pool.acquire() as conn:
            if not await room_store.room_exists(conn, room_id):
                raise not_found("Unknown room.")

    async def join(
        self,
        user_id: str,
        room_id_or_alias: str,
        reason: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> str:
        """Join; the keys of the request's `body` go into the member event (a reason, a
        per-room display name, custom fields), as Synapse, but for those only the server
        may set."""
        room_id = await self.resolve_room(room_id_or_alias)
        await self._require_room(room_id)
        extra = {k: v for k, v in (body or {}).items() if k not in _SERVER_MEMBER_KEYS}
        await self._set_membership(room_id, user_id, user_id, "join", reason, extra)
        return room_id

    async def invite(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        await self._require_local_user(target)
        if await self._shadow_banned(sender):
            return  # reaches nobody (rooms/shadow_bans.py)
        await self._set_membership(room_id, sender, target, "invite", reason)

    async def _shadow_banned(self, user_id: str) -> bool:
        async with self.pool.acquire() as conn:
            return await shadow_ban_store.current_ban(conn, user_id) is not None

    async def leave(self, user_id: str, room_id: str, reason: str | None) -> None:
        await self._require_room(room_id)
        await self._set_membership(room_id, user_id, user_id, "leave", reason)

    async def _membership(self, room_id: str, user_id: str) -> room_store.Membership | None:
        async with self.pool.acquire() as conn:
            return await room_store.membership(conn, room_id, user_id)

    async def kick(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        current = await self._membership(room_id, target)
        if current is None or current.membership not in ("join", "invite", "knock"):
            raise forbidden(f"{target} is not in the room.")
        await self._set_membership(room_id, sender, target, "leave", reason)

    async def ban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        await self._set_membership(room_id, sender, target, "ban", reason)

    async def unban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        current = await self._membership(room_id, target)
        if current is None or current.membership != "ban":
            raise MatrixError(400, "M_BAD_STATE", f"{target} is not banned.")
        await self._set_membership(room_id, sender, target, "leave", reason)

    async def forget(self, user_id: str, room_id: str) -> None:
        current = await self._membership(room_id, user_id)
        if current is None:
            raise not_found("You have never been in this room.")
        if current.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before forgetting it.")
        await self.appender.append(
            Draft(user_id, user_id, types.ACCOUNT_FORGOTTEN, {"forgotten": True}, state_key=room_id)
        )

    async def _set_membership(
        self,
        room_id: str,
        sender: str,
        target: str,
        membership: str,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        content = {**await self.member_content(membership, target), **(extra or {})}
        content["membership"] = membership
        if reason:
            content["reason"] = reason
        unchanged = await self._unchanged_state(room_id, sender, types.MEMBER, target, content)
        if unchanged is not None:
            return unchanged
        draft = Draft(room_id, sender, types.MEMBER, content, state_key=target)
        return (await self.appender.append(draft)).event_id

    # Reading membership

    async def joined_rooms(self, user_id: str) -> list[str]:
        async with self.pool.acquire() as conn:
            return await room_store.joined_room_ids(conn, user_id)

    async def _membership_or_forbidden(self, room_id: str, user_id: str) -> room_store.Membership:
        async with self.pool.acquire() as conn:
            current = await room_store.membership(conn, room_id, user_id)
            if current is None:
                if not await room_store.room_exists(conn, room_id):
                    raise forbidden("You are not in this room (or it does not exist).")
                raise forbidden("You are not in this room.")
            # Forgetting ends access to the history; joining again starts it afresh.
            forgotten = await room_store.forgotten_at(conn, room_id, user_id)
            if forgotten is not None and forgotten > current.stream_position:
                raise forbidden("You have forgotten this room.")
        return current

    async def _require_joined(self, room_id: str, user_id: str) -> None:
        current = await self._membership_or_forbidden(room_id, user_id)
        if current.membership != "join":
            raise forbidden("You are not joined to this room.")

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, JsonDict]:
        await self._require_joined(room_id, user_id)
        async with self.pool.acquire() as conn:
            events = await room_store.member_events(conn, room_id)
        # Served (redactions applied): a redacted member event has lost its display name.
        return {
            event["state_key"]: {
                "display_name": event["content"].get("displayname"),
                "avatar_url": event["content"].get("avatar_url"),
            }
            for event in await self.renderer.serve(events)
            if event["content"].get("membership") == "join"
        }

    async def members(
        self,
        user_id: str,
        room_id: str,
        membership: str | None,
        not_membership: str | None,
        at_position: int | None = None,
    ) -> list[JsonDict]:
        """Member events: the current ones, or as of their leave for one who left; as of
        `at_position` (a token) when given, to one who could see the room then (as Synapse:
        the state at the room's last event before the token, else 403)."""
        async with self.pool.acquire() as conn:
            access = await room_access(conn, user_id, room_id)
            if at_position is None:
                access.require_readable()
                at = access.state_position
            else:
                last = await history_store.last_room_position(conn, room_id, at_position)
                if last is None:
                    raise not_found("The room has no event at or before that token.")
                if not access.sees_position(last):
                    raise forbidden("You could not see the room at that point.")
                at = last
            events = await room_store.member_events(conn, room_id, at)
        chosen = [
            event
            for event in events
            if (membership is None or event.content.get("membership") == membership)
            and (not_membership is None or event.content.get("membership") != not_membership)
        ]
        return await self.renderer.serve(chosen)

    # State

    async def _state_at(self, conn: asyncpg.Connection, user_id: str, room_id: str) -> int | None:
        """Where the state the user reads is taken (None: current), or 403."""
        access = await room_access(conn, user_id, room_id)
        access.require_readable()
        return access.state_position

    async def state(self, user_id: str, room_id: str) -> list[JsonDict]:
        async with self.pool.acquire() as conn:
            position = await self._state_at(conn, user_id, room_id)
            if position is None:
                events = await room_store.state_events(conn, room_id)
            else:
                events = await room_store.state_events_at(conn, room_id, position)
        return await self.renderer.serve(events)

    async def state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str
    ) -> JsonDict:
        """One state event, served (a redacted one shows its redacted content here too)."""
        async with self.pool.acquire() as conn:
            position = await self._state_at(conn, user_id, room_id)
            if position is None:
                event = await room_store.state_event(conn, room_id, event_type, state_key)
            else:
                at = await room_store.state_events_at(conn, room_id, position)
                event = next(
                    (e for e in at if e.type == event_type and e.state_key == state_key), None
                )
        if event is None or (event.type == types.MEMBER and not event.content):
            raise not_found("Event not found.")
        return (await self.renderer.serve([event]))[0]

    async def set_state(
        self, sender: str, room_id: str, event_type: str, state_key: str, content: JsonDict
    ) -> str:
        await self._require_room(room_id)
        if event_type == types.CANONICAL_ALIAS:
            await self._check_canonical_alias(room_id, content)
        if event_type == types.REDACTION:
            await self._require_redaction_target(room_id, content.get("redacts"))
        unchanged = await self._unchanged_state(room_id, sender, event_type, state_key, content)
        if unchanged is not None:
            return unchanged
        if await self._shadow_banned(sender) and not _own_membership(sender, event_type, state_key):
            # It would change the room for everyone: appended for no one, as Synapse.
            return fake_event_id()
        return await self._append_checked(
            Draft(room_id, sender, event_type, content, state_key=state_key)
        )

    async def _unchanged_state(
        self, room_id: str, sender: str, event_type: str, state_key: str, content: JsonDict
    ) -> str | None:
        """The current state event's ID if `sender` set it, unredacted, to this very
        content, else None. A client repeating itself (the same state, a join when
        joined) so appends nothing and gets that event back, as Synapse answers. Only a
        member may be answered so about other state: anyone else is refused as ever."""
        async with self.pool.acquire() as conn:
            current = await room_store.state_event(conn, room_id, event_type, state_key)
            if current is None or current.sender != sender:
                return None
            if canonical_json(current.content) != canonical_json(content):
                return None
            if event_type != types.MEMBER:
                membership = await room_store.membership(conn, room_id, sender)
                if membership is None or membership.membership != "join":
                    return None
            if await event_store.redactions_of(conn, [current.event_id]):
                return None
        return current.event_id

    async def _append_checked(self, draft: Draft) -> str:
        """Append a client's draft after the draft check, again if what it checked changed."""
        if self.draft_check is None:
            return (await self.appender.append(draft)).event_id
        attempts = STATE_EDIT_ATTEMPTS
        while True:
            checked = await self.draft_check(draft)
            try:
                return (await self.appender.append(checked)).event_id
            except MatrixError as refused:
                attempts -= 1
                if checked is draft or refused.errcode != STATE_CHANGED or not attempts:
                    raise

    async def edit_state(
        self,
        sender: str,
        room_id: str,
        event_type: str,
        state_key: str,
        edit: Callable[[JsonDict], JsonDict],
    ) -> str:
        """Append `edit(current content)` as the new state, losing no concurrent change.

        The edit is read-modify-write: it is appended as a StateEdit naming the
        event it was computed from, refused under the append lock if another
        has replaced it meanwhile, and then computed again from the new state.
        """
        await self._require_room(room_id)

        async def attempt() -> str:
            async with self.pool.acquire() as conn:
                current = await room_store.state_event(conn, room_id, event_type, state_key)
            content = edit(dict(current.content) if current is not None else {})
            draft = StateEdit(
                room_id,
                sender,
                event_type,
                content,
                state_key=state_key,
                replaces=current.event_id if current is not None else None,
            )
            return (await self.appender.append(draft)).event_id

        return await retry_edit(attempt, event_type, attempts=STATE_EDIT_ATTEMPTS)

    async def _check_canonical_alias(self, room_id: str, content: JsonDict) -> None:
        # The spec: new aliases must be well formed and point to this room; aliases
        # already in the event are not checked again (one may since have been deleted).
        if not isinstance(content.get("alt_aliases", []), list):
            raise invalid_param("alt_aliases must be a list of room aliases.")
        async with self.pool.acquire() as conn:
            current = await room_store.state_event(conn, room_id, types.CANONICAL_ALIAS, "")
            present = _listed_aliases(current.content) if current is not None else []
            for alias in _listed_aliases(content):
                if alias in present:
                    continue
                if not isinstance(alias, str) or not _ALIAS.match(alias):
                    raise invalid_param(f"{alias!r} is not a valid room alias.")
                target = await room_store.alias_target(conn, alias)
                if target is None or target[0] != room_id:
                    raise MatrixError(
                        400, "M_BAD_ALIAS", f"Alias {alias!r} does not point to this room."
                    )

    # Timeline

    async def send(
        self, sender: str, room_id: str, event_type: str, content: JsonDict, txn: TxnKey | None
    ) -> str:
        if event_type == types.REDACTION:
            target = await self._require_redaction_target(room_id, content.get("redacts"))
            if target.sender != sender and await self._shadow_banned(sender):
                return fake_event_id()  # others' events stay as they are for everyone
        return await self._append_checked(Draft(room_id, sender, event_type, content, txn=txn))

    async def redact(
        self, sender: str, room_id: str, event_id: str, reason: str | None, txn: TxnKey | None
    ) -> str:
        target = await self._require_redaction_target(room_id, event_id)
        if target.sender != sender and await self._shadow_banned(sender):
            return fake_event_id()  # others' events stay as they are for everyone
        content: JsonDict = {"redacts": event_id}
        if reason is not None:
            content["reason"] = reason
        event = await self.appender.append(
            Draft(room_id, sender, types.REDACTION, content, txn=txn)
        )
        return event.event_id

    async def _require_redaction_target(self, room_id: str, event_id: object) -> Event:
        # The redactions projection trusts `redacts`: a redaction sent in one room
        # must never name an event of another (anyone can be admin of their own room).
        # The appender refuses one again under its lock; here the client learns why,
        # in Synapse's words and statuses.
        if not isinstance(event_id, str):
            raise bad_json("A redaction must name the event it removes in 'redacts'.")
        async with self.pool.acquire() as conn:
            target = await event_store.event_by_id(conn, event_id)
        if target is None or not types.is_room_chain(target.room_id):
            raise not_found("Event not found.")
        if target.room_id != room_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot redact event from a different room.")
        if target.type == types.CREATE:
            raise forbidden("Redacting create events is not permitted.")
        return target

    async def event(self, user_id: str, device_id: str, room_id: str, event_id: str) -> JsonDict:
        """GET /rooms/{roomId}/event/{eventId}: the event if history visibility lets the
        user see it, else 404 (rooms/access.py)."""
        async with self.pool.acquire() as conn:
            access = await room_access(conn, user_id, room_id)
            ignored = await ignored_users(conn, user_id)
            event = await visible_event(conn, access, event_id, ignored)
        return (await self.renderer.serve([event], (user_id, device_id)))[0]

    # Aliases

    def _alias_from_name(self, name: str) -> str:
        alias = f"#{name}:{self.server_name}"
        self.check_alias(alias)
        return alias

    def check_alias(self, alias: str) -> None:
        if not _ALIAS.match(alias) or len(alias) > 255:
            raise invalid_param(f"{alias!r} is not a valid room alias.")
        if alias.split(":", 1)[1] != self.server_name:
            raise invalid_param("Room alias must be on this server.")

    async def resolve_alias(self, alias: str) -> str:
        self.check_alias(alias)
        return await self.resolve_room(alias)

    async def create_alias(self, sender: str, alias: str, room_id: str, is_admin: bool) -> None:
        """Point `alias` at `room_id`: only a joined member (or a server admin) may, as in
        Synapse, or anyone could give a private room a public name."""
        self.check_alias(alias)
        await self._require_room(room_id)
        if not is_admin:
            async with self.pool.acquire() as conn:
                current = await room_store.membership(conn, room_id, sender)
            if current is None or current.membership != "join":
                raise forbidden("You must be in the room to create an alias for it.")
        await self.appender.append(
            Draft(alias, sender, types.ALIAS, {"room_id": room_id}, state_key="")
        )

    async def delete_alias(self, sender: str, alias: str, is_admin: bool) -> None:
        self.check_alias(alias)
        async with self.pool.acquire() as conn:
            target = await room_store.alias_target(conn, alias)
            if target is None:
                raise not_found(f"Room alias {alias} not found.")
            room_id, creator = target
            levels_event = await room_store.state_event(conn, room_id, types.POWER_LEVELS, "")
            create_event = await room_store.state_event(conn, room_id, types.CREATE, "")
        if sender != creator and not is_admin:
            levels = PowerLevels.of_state(create_event, levels_event)
            if levels.user_level(sender) < levels.level_for_event(types.CANONICAL_ALIAS, True):
                raise forbidden("You may not delete this alias.")
        await self.appender.append(Draft(alias, sender, types.ALIAS, {}, state_key=""))
        await self._drop_from_canonical_alias(sender, room_id, alias)

    async def _drop_from_canonical_alias(self, sender: str, room_id: str, alias: str) -> None:
        """Take a deleted alias out of the room's m.room.canonical_alias (its `alias` and
        `alt_aliases`), as Synapse does; best effort: one who may delete the alias (its
        creator) may still lack the power to change the canonical alias, and then it
        stays, naming an alias that no longer resolves."""
        async with self.pool.acquire() as conn:
            current = await room_store.state_event(conn, room_id, types.CANONICAL_ALIAS, "")
        if current is None or alias not in _listed_aliases(current.content):
            return

        def without_alias(content: JsonDict) -> JsonDict:
            if content.get("alias") == alias:
                del content["alias"]
            alt_aliases = content.pop("alt_aliases", None)
            if isinstance(alt_aliases, list):
                if kept := [listed for listed in alt_aliases if listed != alias]:
                    content["alt_aliases"] = kept
            elif alt_aliases is not None:
                content["alt_aliases"] = alt_aliases
            return content

        try:
            await self.edit_state(sender, room_id, types.CANONICAL_ALIAS, "", without_alias)
        except MatrixError as refused:
            if refused.errcode != "M_FORBIDDEN":
                raise

    async def room_aliases(self, user_id: str, room_id: str) -> list[str]:
        """The room's local aliases, to whoever may read its state (rooms/access.py): its
        members, those who left it, and anyone when it is world_readable, as Synapse."""
        async with self.pool.acquire() as conn:
            (await room_access(conn, user_id, room_id)).require_readable()
            return await room_store.aliases_of(conn, room_id)


def _own_membership(sender: str, event_type: str, state_key: str) -> bool:
    """Whether a state event is the sender's own membership (a join, a leave), which a
    shadow-banned user may still change: anything else by them is appended for no one."""
    return event_type == types.MEMBER and state_key == sender
