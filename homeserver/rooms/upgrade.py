"""Room upgrades (POST /rooms/{roomId}/upgrade), as the spec's server behaviour lists them
and Synapse carries them out (handlers/room.py, `upgrade_room`):

1. The user must be joined and have the power to send `m.room.tombstone` (403).
2. A new room is created, its create event naming the old room as `predecessor`
   (with the old room's last event) and keeping its `type` and `m.federate`; it gets
   the state the spec recommends transferring (power levels, join rules, name, topic,
   avatar, encryption, history visibility, guest access, server ACL) and the bans,
   all in one append: the room exists whole or not at all. The upgrading user is
   raised for that append when their level could not send all of it, then the power
   levels are set to the old room's exactly (so with any number of users).
3. The old room gets its `m.room.tombstone`; its local aliases move to the new room
   (each keeping its creator), and so do its canonical alias and its place in the
   room directory.
4. Every local member's tags of the old room are copied, and what capabilities add
   (push rules, wired in app.py).
5. The old room's power levels are raised so that ordinary members can neither send
   nor invite: `events_default` and `invite` to the greater of 50 and users_default + 1.

Steps after 2 that the user may lack the power for (the canonical alias, the old power
levels) are best effort, as in Synapse: the new room stands either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.account_data.service import AccountDataService
from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.events import types
from homeserver.events.model import Draft, Event, JsonDict, StateEdit
from homeserver.events.room_versions import KNOWN
from homeserver.log.appender import Appender
from homeserver.rooms.auth import SUPPORTED_ROOM_VERSIONS
from homeserver.rooms.power_levels import (
    PowerLevels,
    creators_levels,
    fixed_content,
    room_creators,
)
from homeserver.rooms.presets import default_power_levels
from homeserver.rooms.service import RoomService
from homeserver.store import room_directory as directory_store
from homeserver.store import rooms as room_store

log = logging.getLogger(__name__)

# The state the spec recommends transferring, besides the power levels.
TRANSFERRED_STATE = (
    types.JOIN_RULES,
    types.NAME,
    types.TOPIC,
    types.AVATAR,
    types.ENCRYPTION,
    types.HISTORY_VISIBILITY,
    types.GUEST_ACCESS,
    types.SERVER_ACL,
)
TOMBSTONE_BODY = "This room has been replaced"

# What a capability copies of its users' state to the new room: (members of the old
# room, old room ID, new room ID). Push rules (push/service.py), wired in app.py.
UserStateCopy = Callable[[Sequence[str], str, str], Awaitable[None]]

StateMap = Mapping[tuple[str, str], Event]


def _restricted_level(levels: Mapping[str, Any]) -> int:
    users_default = PowerLevels.from_content(levels).users_default
    return max(users_default + 1, 50)


def _needed_level(levels: Mapping[str, Any]) -> int:
    """The level that sends every state event and ban of a copy of the room."""
    parsed = PowerLevels.from_content(levels)
    return max(parsed.state_default, parsed.ban, max(parsed.events.values(), default=0))


def _moved_canonical_alias(
    content: Mapping[str, Any], moved: Sequence[str]
) -> tuple[JsonDict, JsonDict]:
    """(what stays in the old room's m.room.canonical_alias, what the new room's gets):
    the aliases that moved go, the others stay."""
    old: JsonDict = dict(content)
    new: JsonDict = {}
    if old.get("alias") in moved:
        new["alias"] = old.pop("alias")
    alt_aliases = content.get("alt_aliases")
    if isinstance(alt_aliases, list):
        new_alt = [alias for alias in alt_aliases if alias in moved]
        old_alt = [alias for alias in alt_aliases if alias not in moved]
        if new_alt:
            new["alt_aliases"] = new_alt
        if old_alt:
            old["alt_aliases"] = old_alt
        else:
            old.pop("alt_aliases", None)
    return old, new


class RoomUpgrader:
    def __init__(
        self,
        pool: asyncpg.Pool,
        appender: Appender,
        rooms: RoomService,
        account_data: AccountDataService,
        user_state: Sequence[UserStateCopy] = (),
    ) -> None:
        self._pool = pool
        self._appender = appender
        self._rooms = rooms
        self._account_data = account_data
        self._user_state = list(user_state)
        # Upgrades under way here: room ID -> (upgrading user, the upgrade).
        self._running: dict[str, tuple[str, asyncio.Future[str]]] = {}

    async def upgrade(
        self,
        user_id: str,
        room_id: str,
        new_version: str,
        additional_creators: Sequence[str] = (),
    ) -> str:
        """Replace the room by a new one of `new_version`; its ID. `additional_creators`
        share the upgrading user's unlimited power in a version 12 room.

        Two upgrades of one room at once would each make a successor. The same user
        asking again meanwhile (a client retrying) gets the first one's answer, as in
        Synapse; anyone else is refused. Across processes, the tombstone is the
        arbiter: only the upgrade that read the room untombstoned may place it."""
        running = self._running.get(room_id)
        if running is not None:
            upgrader, upgrade = running
            if upgrader != user_id:
                raise MatrixError(400, "M_UNKNOWN", "An upgrade for this room is in progress.")
            return await asyncio.shield(upgrade)
        upgrade = asyncio.ensure_future(
            self._upgrade(user_id, room_id, new_version, additional_creators)
        )
        self._running[room_id] = (user_id, upgrade)
        upgrade.add_done_callback(lambda _done: self._running.pop(room_id, None))
        # A client hanging up abandons its wait, not the upgrade half done.
        return await asyncio.shield(upgrade)

    async def _upgrade(
        self,
        user_id: str,
        room_id: str,
        new_version: str,
        additional_creators: Sequence[str],
    ) -> str:
        if new_version not in SUPPORTED_ROOM_VERSIONS:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {new_version!r} is not supported by this server.",
            )
        async with self._pool.acquire() as conn:
            events = await room_store.state_events(conn, room_id)
            head = await room_store.head_event_id(conn, room_id)
            aliases = await room_store.alias_creators(conn, room_id)
            members = await room_store.joined_user_ids(conn, room_id)
            published = await directory_store.is_published(conn, room_id)
        if not events or head is None:
            raise not_found(f"Unknown room {room_id}.")
        state = {(event.type, event.state_key or ""): event for event in events}
        self._require_upgrader(state, user_id)
        new_room_id = await self._create_successor(
            user_id, room_id, head, new_version, additional_creators, state, aliases, published
        )
        tombstone = {"body": TOMBSTONE_BODY, "replacement_room": new_room_id}
        earlier = state.get((types.TOMBSTONE, ""))
        await self._appender.append(
            StateEdit(
                room_id,
                user_id,
                types.TOMBSTONE,
                tombstone,
                state_key="",
                replaces=earlier.event_id if earlier is not None else None,
            )
        )
        await self._move_aliases(user_id, room_id, new_room_id, aliases, state)
        await self._account_data.copy_room_tags(members, room_id, new_room_id)
        for copy in self._user_state:
            await copy(members, room_id, new_room_id)
        await self._restrict_old_room(user_id, room_id, state, published)
        return new_room_id

    @staticmethod
    def _require_upgrader(state: StateMap, user_id: str) -> None:
        member = state.get((types.MEMBER, user_id))
        if member is None or member.content.get("membership") != "join":
            raise forbidden("You are not in this room.")
        levels = PowerLevels.of_state(
            state.get((types.CREATE, "")), state.get((types.POWER_LEVELS, ""))
        )
        needed = levels.level_for_event(types.TOMBSTONE, True)
        if levels.user_level(user_id) < needed:
            raise forbidden(f"You need power level {needed} to upgrade this room.")

    async def _create_successor(
        self,
        user_id: str,
        old_room_id: str,
        head: str,
        version: str,
        additional_creators: Sequence[str],
        state: StateMap,
        aliases: Mapping[str, str],
        published: bool,
    ) -> str:
        old_create_event = state[(types.CREATE, "")]
        old_create = old_create_event.content
        predecessor: JsonDict = {"room_id": old_room_id}
        if not KNOWN[version].room_ids_are_hashes:
            # The old room's last event (deprecated by version 12, whose create event
            # cannot name the tombstone that names the new room's hash).
            predecessor["event_id"] = head
        create: JsonDict = {"room_version": version, "predecessor": predecessor}
        if isinstance(old_create.get("type"), str):
            create["type"] = old_create["type"]
        if old_create.get("m.federate") is False:
            create["m.federate"] = False
        if additional_creators and KNOWN[version].creators_have_unlimited_power:
            create["additional_creators"] = list(additional_creators)
        create_draft = self._rooms.create_event(user_id, create)
        levels_event = state.get((types.POWER_LEVELS, ""))
        levels = (
            fixed_content(levels_event.content)
            if levels_event is not None
            else default_power_levels(user_id, "private_chat", [])
        )
        if old_creators := room_creators(old_create_event.sender, old_create):
            # Out of a version 12 room: its creators' unlimited power becomes 100.
            users = levels.get("users")
            held = dict(users) if isinstance(users, dict) else {}
            levels["users"] = {**{creator: 100 for creator in old_creators}, **held}
        if new_creators := room_creators(user_id, create_draft.content):
            levels = creators_levels(levels, new_creators) | {"events": levels.get("events", {})}
        # Raised for the copy when needed, then the old room's levels exactly.
        needed = _needed_level(levels)
        raised = levels
        new_levels = PowerLevels.from_content(levels).with_creators(new_creators or frozenset())
        if new_levels.user_level(user_id) < needed:
            users = levels.get("users")
            raised = {
                **levels,
                "users": {**(users if isinstance(users, dict) else {}), user_id: needed},
            }
        new_room_id = create_draft.room_id

        def draft(event_type: str, content: Mapping[str, Any], state_key: str = "") -> Draft:
            return Draft(new_room_id, user_id, event_type, dict(content), state_key=state_key)

        drafts = [
            create_draft,
            draft(types.MEMBER, await self._rooms.member_content("join", user_id), user_id),
            draft(types.POWER_LEVELS, raised),
        ]
        drafts.extend(
            draft(event_type, state[(event_type, "")].content)
            for event_type in TRANSFERRED_STATE
            if (event_type, "") in state
        )
        target_levels = PowerLevels.from_content(raised).with_creators(new_creators or frozenset())
        sender_level = target_levels.user_level(user_id)
        drafts.extend(
            draft(types.MEMBER, event.content, event.state_key or "")
            for (event_type, key), event in state.items()
            if event_type == types.MEMBER
            and event.content.get("membership") == "ban"
            and target_levels.user_level(key) < sender_level
        )
        canonical = state.get((types.CANONICAL_ALIAS, ""))
        if canonical is not None:
            _, moved = _moved_canonical_alias(canonical.content, list(aliases))
            drafts.append(draft(types.CANONICAL_ALIAS, moved))
        if published:
            drafts.append(draft(types.ROOM_DIRECTORY, {"visibility": "public"}))
        if raised is not levels:
            drafts.append(draft(types.POWER_LEVELS, levels))
        await self._appender.append_group(drafts)
        return new_room_id

    async def _move_aliases(
        self,
        user_id: str,
        old_room_id: str,
        new_room_id: str,
        aliases: Mapping[str, str],
        state: StateMap,
    ) -> None:
        if not aliases:
            return
        moves: list[Draft] = []
        for alias, creator in aliases.items():
            moves.append(Draft(alias, user_id, types.ALIAS, {}, state_key=""))
            moved = {"room_id": new_room_id, "creator": creator}
            moves.append(Draft(alias, user_id, types.ALIAS, moved, state_key=""))
        await self._appender.append_group(moves)
        canonical = state.get((types.CANONICAL_ALIAS, ""))
        if canonical is not None:
            old, _ = _moved_canonical_alias(canonical.content, list(aliases))
            await self._best_effort(
                Draft(old_room_id, user_id, types.CANONICAL_ALIAS, old, state_key="")
            )

    async def _restrict_old_room(
        self, user_id: str, room_id: str, state: StateMap, published: bool
    ) -> None:
        if published:
            unpublished = {"visibility": "private"}
            await self._best_effort(
                Draft(room_id, user_id, types.ROOM_DIRECTORY, unpublished, state_key="")
            )
        levels_event = state.get((types.POWER_LEVELS, ""))
        if levels_event is None:
            return
        levels = fixed_content(levels_event.content)
        restricted = _restricted_level(levels)
        changed = {
            key: restricted
            for key in ("events_default", "invite")
            if levels.get(key, 0) < restricted
        }
        if changed:
            draft = Draft(room_id, user_id, types.POWER_LEVELS, {**levels, **changed}, state_key="")
            await self._best_effort(draft)

    async def _best_effort(self, draft: Draft) -> None:
        try:
            await self._appender.append(draft)
        except MatrixError as refused:
            if refused.errcode != "M_FORBIDDEN":
                raise
            log.info("room upgrade: %s in %s refused: %s", draft.type, draft.room_id, refused)
