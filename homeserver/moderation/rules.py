"""The moderation facts' rules, decided under the append lock.

Reports (moderation chain): shapes only. Who may report what (only what the
reporter can see) is decided before the append by the report service, and who
may delete a report by the admin API's check.

Mutes (room chains): a `com.linkchat.mute` is kept by the server (a StateEdit,
which no client can send), and a mute must agree with the room's power levels
as the group leaves them: the muted user at the recorded level, below
`events_default`. So the record can never claim a mute the power levels do not
hold, and the power-level change it goes with is decided by the Matrix rules
like any other (the sender needs the level of m.room.power_levels and more than
the user's).
"""

from __future__ import annotations

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.events import types
from homeserver.events.content.mutes import muted_user, parse_mute
from homeserver.events.content.reports import parse_report_fact
from homeserver.events.content.room_blocks import parse_room_block
from homeserver.events.content.shadow_bans import parse_shadow_ban
from homeserver.events.model import Draft, StateEdit
from homeserver.log.rules import MODERATION, ROOM, ChainRules
from homeserver.moderation.room_blocks import authorize_entry, load_room_block_facts
from homeserver.projections.room_state import RoomState
from homeserver.rooms.power_levels import PowerLevels


def authorize_report_fact(state: RoomState, draft: Draft) -> None:
    """A report, or its deletion, is a fact of its own (its ID is its position)."""
    if draft.state_key is not None:
        raise forbidden("report facts are not state")
    parse_report_fact(draft.type, draft.content)


def authorize_mute(state: RoomState, draft: Draft) -> None:
    if not isinstance(draft, StateEdit):
        raise forbidden(
            f"{types.MUTE} is kept by the server: use /_linkchat/v1/rooms/{{roomId}}/mutes."
        )
    target = muted_user(draft.state_key)
    if target is None or not types.is_user_id(target):
        raise invalid_param(f"The state key of {types.MUTE} is '_' and a user ID.")
    mute = parse_mute(draft.content)
    if mute is None:
        if parse_mute(state.content(types.MUTE, draft.state_key or "")) is None:
            raise not_found("This user is not muted.")
        return
    levels = PowerLevels.of_room(state)
    if levels.user_level(target) != mute.level or mute.level >= levels.events_default:
        raise forbidden("A mute must hold the user below events_default in the power levels.")


def authorize_shadow_ban(state: RoomState, draft: Draft) -> None:
    """A shadow-ban is kept by the admin API (a StateEdit of the user's previous fact),
    keyed by a user ID; a ban needs none in force, an unban one."""
    if not isinstance(draft, StateEdit):
        raise forbidden(f"{types.SHADOW_BAN} is kept by the server.")
    user_id = draft.state_key
    if user_id is None or not types.is_user_id(user_id):
        raise invalid_param(f"The state key of {types.SHADOW_BAN} is a user ID.")
    change = parse_shadow_ban(draft.content)
    current = state.content(types.SHADOW_BAN, user_id)
    in_force = current is not None and current.get("shadow_banned") is True
    if change.shadow_banned == in_force:
        raise invalid_param("The user is already " + ("" if in_force else "not ") + "banned.")


def authorize_room_block(state: RoomState, draft: Draft) -> None:
    """A room block is keyed by a room ID, and said by the admin API only."""
    if not isinstance(draft, StateEdit):
        raise forbidden(f"{types.ROOM_BLOCK} is kept by the server.")
    room_id = draft.state_key
    if room_id is None or not types.is_room_chain(room_id) or ":" not in room_id:
        raise invalid_param(f"The state key of {types.ROOM_BLOCK} is a room ID.")
    parse_room_block(draft.content)


def authorize_room_purged(state: RoomState, draft: Draft) -> None:
    """A purge is keyed by the room it closes, and holds nothing else."""
    room_id = draft.state_key
    if room_id is None or not types.is_room_chain(room_id) or ":" not in room_id:
        raise invalid_param(f"The state key of {types.ROOM_PURGED} is a room ID.")
    if draft.content:
        raise invalid_param(f"{types.ROOM_PURGED} holds nothing.")


def register(rules: ChainRules) -> None:
    rules.add(MODERATION, {*types.REPORT_TYPES, types.REPORT_DELETED}, authorize_report_fact)
    rules.add(ROOM, {types.MUTE}, authorize_mute)
    rules.add(MODERATION, {types.SHADOW_BAN}, authorize_shadow_ban)
    rules.add(MODERATION, {types.ROOM_BLOCK}, authorize_room_block)
    rules.add(MODERATION, {types.ROOM_PURGED}, authorize_room_purged)
    # Nobody enters a blocked room.
    rules.add_with_facts(ROOM, {types.MEMBER}, authorize_entry, load_room_block_facts)
