"""Authorization rules of Matrix room versions 1 to 12, for a server that does not federate.

`authorize` decides whether one event may be appended to a room given the
room's current state, and raises a 403 `M_FORBIDDEN` with a readable reason
when it may not. Rule numbers in comments refer to the v11 rules in the spec
(https://spec.matrix.org/latest/rooms/v11/#authorization-rules). What other
versions change is asked of the room's `RoomVersion` (events/room_versions.py):
the `creator` of the create event (v1 to v10), `m.room.aliases` (v1 to v5),
`notifications` levels (v6+), knocking (v7+), restricted joins (v8+),
`knock_restricted` and integer power levels (v10+), and creators with unlimited
power who may not be named in the power levels (v12; rooms/power_levels.py).

What differs from the spec, because every event here is created and signed by
this one server: signature checks are skipped (rules 0 and 4.2), auth_events
are the current state (rule 2), third-party invites are refused, and a
restricted join is authorised by the `join_authorised_via_users_server` user,
whom the joining service picks after checking the `allow` conditions itself.
Redactions are authorised here too (v11 defers them to "handling
redactions"): the redact level, or redacting one's own event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.errors import forbidden
from homeserver.events.model import Draft
from homeserver.events.room_versions import KNOWN, RoomVersion, of_create_content
from homeserver.events.types import is_user_id
from homeserver.projections.room_state import RoomState
from homeserver.rooms.power_levels import (
    MAX_LEVEL,
    MIN_LEVEL,
    PowerLevels,
    as_level,
    room_creators,
)

SUPPORTED_ROOM_VERSIONS = frozenset(KNOWN)


_LEVEL_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)


def authorize(state: RoomState, draft: Draft, redacted_sender: str | None = None) -> None:
    """Raise `forbidden` unless `draft` may be appended to the room in `state`.

    `redacted_sender` is the sender of the event an `m.room.redaction` targets,
    or None when that event is unknown; only users with the redact level may
    redact an event that is not their own.
    """
    if draft.type == "m.room.create":
        _authorize_create(state, draft)
        return
    create = state.get("m.room.create")
    if not state.exists or create is None:
        raise forbidden("This room does not exist.")
    version = of_create_content(create.content)
    _check_federate(state, draft)
    if draft.type == "m.room.member":
        _authorize_membership(state, draft, version)
        return
    if draft.type == "m.room.aliases" and version.special_case_aliases:
        # Rule 4 of versions 1 to 5: a server's aliases, set by a user of that server.
        if draft.state_key != _server_of(draft.sender):
            raise forbidden("m.room.aliases must have the sender's server as its state key.")
        return
    # Rule 5.
    if state.membership(draft.sender) != "join":
        raise forbidden(f"{draft.sender} is not in this room.")
    if draft.type == "m.room.third_party_invite":
        raise forbidden("Third-party invites are not supported on this server.")
    levels = PowerLevels.of_room(state)
    sender_level = levels.user_level(draft.sender)
    # Rule 7.
    required = levels.level_for_event(draft.type, draft.is_state)
    if sender_level < required:
        raise forbidden(
            f"You need power level {required} to send {draft.type} events "
            f"in this room; you have {sender_level}."
        )
    # Rule 8.
    if draft.state_key is not None and draft.state_key.startswith("@"):
        if draft.state_key != draft.sender:
            raise forbidden("A state key that is a user ID may only be set by that user.")
    if draft.type == "m.room.power_levels":
        _authorize_power_levels(state, draft, levels, version)
    elif draft.type == "m.room.redaction":
        _authorize_redaction(draft, levels, redacted_sender)


def _server_of(user_or_room_id: str) -> str:
    return user_or_room_id.partition(":")[2]


def _authorize_create(state: RoomState, draft: Draft) -> None:
    # Rule 1.1: a create event must be the very first event of its room.
    if state.exists:
        raise forbidden("This room already exists.")
    if draft.state_key != "":
        raise forbidden("The room creation event must have an empty state key.")
    if "room_version" in draft.content:
        named = draft.content["room_version"]
        if not isinstance(named, str) or named not in SUPPORTED_ROOM_VERSIONS:
            raise forbidden(f"Room version {named!r} is not supported by this server.")
    version = of_create_content(draft.content)
    # Rule 1.2 before version 12 (whose room ID is the create event's hash, checked
    # by the appender, which makes it).
    if not version.room_ids_are_hashes and _server_of(draft.room_id) != _server_of(draft.sender):
        raise forbidden("A room can only be created by a user of the server in its room ID.")
    if not version.implicit_creator and not isinstance(draft.content.get("creator"), str):
        # Rule 1.3 of versions 1 to 10.
        raise forbidden("The room creation event must name its creator.")
    if version.creators_have_unlimited_power and "additional_creators" in draft.content:
        additional = draft.content["additional_creators"]
        # Rule 1.4 of version 12.
        if not isinstance(additional, list) or not all(
            isinstance(user, str) and is_user_id(user) for user in additional
        ):
            raise forbidden("additional_creators must be a list of user IDs.")


def _check_federate(state: RoomState, draft: Draft) -> None:
    # Rule 3.
    create = state.get("m.room.create")
    if create is None or create.content.get("m.federate", True) is not False:
        return
    if _server_of(draft.sender) != _server_of(create.sender):
        raise forbidden("This room is not open to users of other servers.")


def _authorize_membership(state: RoomState, draft: Draft, version: RoomVersion) -> None:
    # Rule 4.1.
    target = draft.state_key
    membership = draft.content.get("membership")
    if target is None or not isinstance(membership, str):
        raise forbidden("A membership event needs a state key and a membership.")
    if not is_user_id(target):
        raise forbidden(f"{target!r} is not a user ID.")
    levels = PowerLevels.of_room(state)
    if membership == "join":
        _authorize_join(state, draft, levels, version)
    elif membership == "invite":
        _authorize_invite(state, draft, levels)
    elif membership == "leave":
        _authorize_leave(state, draft, levels)
    elif membership == "ban":
        _authorize_ban(state, draft, levels)
    elif membership == "knock" and version.knocking:
        _authorize_knock(state, draft, version)
    else:
        raise forbidden(f"Unknown membership {membership!r}.")


def _creator(state: RoomState, version: RoomVersion) -> str | None:
    """The room's creator: the create event's sender, or its `creator` before v11."""
    create = state.get("m.room.create")
    if create is None:
        return None
    if version.implicit_creator:
        return create.sender
    creator = create.content.get("creator")
    return creator if isinstance(creator, str) else None


def _invite_only_rules(version: RoomVersion) -> frozenset[str]:
    return frozenset({"invite", "knock"} if version.knocking else {"invite"})


def _restricted_rules(version: RoomVersion) -> frozenset[str]:
    rules = {"restricted"} if version.restricted_join_rule else set()
    if version.knock_restricted_join_rule:
        rules.add("knock_restricted")
    return frozenset(rules)


def _authorize_join(
    state: RoomState, draft: Draft, levels: PowerLevels, version: RoomVersion
) -> None:
    target = draft.state_key
    create = state.get("m.room.create")
    # Rule 4.3.1: the creator's own join right after the create event.
    if (
        create is not None
        and state.head is not None
        and state.head.event_id == create.event_id
        and target == draft.sender == _creator(state, version)
    ):
        return
    if draft.sender != target:
        raise forbidden("You cannot make someone else join a room.")
    current = state.membership(draft.sender)
    if current == "ban":
        raise forbidden("You are banned from this room.")
    rule = state.join_rule()
    if rule == "public":
        return
    if rule in _invite_only_rules(version):
        if current in ("invite", "join"):
            return
        raise forbidden("You need an invitation to join this room.")
    if rule in _restricted_rules(version):
        if current in ("invite", "join"):
            return
        authoriser = draft.content.get("join_authorised_via_users_server")
        if (
            isinstance(authoriser, str)
            and state.membership(authoriser) == "join"
            and levels.user_level(authoriser) >= levels.invite
        ):
            return
        raise forbidden("You are not allowed to join this room without an invitation.")
    raise forbidden(f"Nobody may join a room whose join rule is {rule!r}.")


def _authorize_invite(state: RoomState, draft: Draft, levels: PowerLevels) -> None:
    target = draft.state_key or ""
    # Rule 4.4.1, refused: we do not issue or accept third-party invites.
    if "third_party_invite" in draft.content:
        raise forbidden("Third-party invites are not supported on this server.")
    if state.membership(draft.sender) != "join":
        raise forbidden("You must be in the room to invite someone.")
    current = state.membership(target)
    if current == "join":
        raise forbidden(f"{target} is already in the room.")
    if current == "ban":
        raise forbidden(f"{target} is banned from the room.")
    sender_level = levels.user_level(draft.sender)
    if sender_level < levels.invite:
        raise forbidden(f"You need power level {levels.invite} to invite; you have {sender_level}.")


def _authorize_leave(state: RoomState, draft: Draft, levels: PowerLevels) -> None:
    target = draft.state_key or ""
    current = state.membership(target)
    if draft.sender == target:
        # Rule 4.5.1: leaving, or declining an invitation or a knock.
        if current in ("invite", "join", "knock"):
            return
        if current == "ban":
            raise forbidden("You are banned from this room and cannot unban yourself.")
        raise forbidden("You are not in this room.")
    if state.membership(draft.sender) != "join":
        raise forbidden("You must be in the room to kick or unban someone.")
    sender_level = levels.user_level(draft.sender)
    if current == "ban" and sender_level < levels.ban:
        raise forbidden(f"You need power level {levels.ban} to unban; you have {sender_level}.")
    if sender_level < levels.kick:
        raise forbidden(f"You need power level {levels.kick} to kick; you have {sender_level}.")
    if levels.user_level(target) >= sender_level:
        raise forbidden(f"You cannot remove {target}: their power level is not below yours.")


def _authorize_ban(state: RoomState, draft: Draft, levels: PowerLevels) -> None:
    target = draft.state_key or ""
    if state.membership(draft.sender) != "join":
        raise forbidden("You must be in the room to ban someone.")
    sender_level = levels.user_level(draft.sender)
    if sender_level < levels.ban:
        raise forbidden(f"You need power level {levels.ban} to ban; you have {sender_level}.")
    if levels.user_level(target) >= sender_level:
        raise forbidden(f"You cannot ban {target}: their power level is not below yours.")


def _authorize_knock(state: RoomState, draft: Draft, version: RoomVersion) -> None:
    knockable = {"knock"} | ({"knock_restricted"} if version.knock_restricted_join_rule else set())
    if state.join_rule() not in knockable:
        raise forbidden("This room does not accept knocks.")
    if draft.sender != draft.state_key:
        raise forbidden("You cannot knock on behalf of someone else.")
    current = state.membership(draft.sender)
    if current == "ban":
        raise forbidden("You are banned from this room.")
    if current in ("invite", "join"):
        raise forbidden(f"You cannot knock: you are already {_described(current)}.")


def _described(membership: str) -> str:
    return "invited" if membership == "invite" else "in the room"


def _is_level(value: object, version: RoomVersion) -> bool:
    if not version.integer_power_levels:
        # Before version 10 a level may be a string holding an integer ("50").
        return as_level(value) is not None
    return (
        isinstance(value, int) and not isinstance(value, bool) and MIN_LEVEL <= value <= MAX_LEVEL
    )


def _validate_power_levels(
    state: RoomState, content: Mapping[str, Any], version: RoomVersion
) -> None:
    # Rules 9.1 to 9.3: since room version 10 every level must be an integer.
    for key in _LEVEL_KEYS:
        if key in content and not _is_level(content[key], version):
            raise forbidden(f"Power level {key!r} must be an integer.")
    for key in ("events", "notifications"):
        if key not in content:
            continue
        value = content[key]
        if not isinstance(value, Mapping) or not all(_is_level(v, version) for v in value.values()):
            raise forbidden(f"Power levels {key!r} must map names to integers.")
    if "users" in content:
        users = content["users"]
        if not isinstance(users, Mapping) or not all(
            isinstance(user, str) and is_user_id(user) and _is_level(level, version)
            for user, level in users.items()
        ):
            raise forbidden("Power levels 'users' must map user IDs to integers.")
        create = state.get("m.room.create")
        creators = room_creators(create.sender, create.content) if create is not None else None
        # Rule 10.4 of version 12: a creator's power is not the power levels' to give.
        if creators and (named := sorted(creators & set(users))):
            raise forbidden(f"Room creators cannot be given a power level: {', '.join(named)}.")


def _submap(content: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = content.get(key)
    return value if isinstance(value, Mapping) else {}


def _authorize_power_levels(
    state: RoomState, draft: Draft, levels: PowerLevels, version: RoomVersion
) -> None:
    new = draft.content
    _validate_power_levels(state, new, version)
    old = state.content("m.room.power_levels")
    # Rule 9.4: the first power levels event only has to be well formed.
    if old is None:
        return
    sender_level = levels.user_level(draft.sender)

    def refuse_above_own(what: str, level: int | None) -> None:
        if level is not None and level > sender_level:
            raise forbidden(
                f"You cannot change {what}: {level} is above your power level {sender_level}."
            )

    # Rule 9.5.
    for key in _LEVEL_KEYS:
        before, after = as_level(old.get(key)), as_level(new.get(key))
        if before != after:
            refuse_above_own(repr(key), before)
            refuse_above_own(repr(key), after)
    # Rules 9.6 and 9.7 (`notifications` since version 6).
    sections = ("events", "notifications") if version.limit_notifications_levels else ("events",)
    for section in sections:
        old_map, new_map = _submap(old, section), _submap(new, section)
        for name in set(old_map) | set(new_map):
            before, after = as_level(old_map.get(name)), as_level(new_map.get(name))
            if before != after:
                refuse_above_own(f"the level of {name}", before)
                refuse_above_own(f"the level of {name}", after)
    # Rules 9.8 and 9.9.
    old_users, new_users = _submap(old, "users"), _submap(new, "users")
    for user in set(old_users) | set(new_users):
        before, after = as_level(old_users.get(user)), as_level(new_users.get(user))
        if before == after:
            continue
        if user != draft.sender and before is not None and before >= sender_level:
            raise forbidden(f"You cannot change the power level of {user}: it is not below yours.")
        refuse_above_own(f"the power level of {user}", after)


def _authorize_redaction(draft: Draft, levels: PowerLevels, redacted_sender: str | None) -> None:
    if not isinstance(draft.content.get("redacts"), str):
        raise forbidden("A redaction must name the event it removes in 'redacts'.")
    if redacted_sender is not None and redacted_sender == draft.sender:
        return
    sender_level = levels.user_level(draft.sender)
    if sender_level < levels.redact:
        raise forbidden(
            f"You need power level {levels.redact} to remove other people's events; "
            f"you have {sender_level}."
        )
