"""Room versions 1 to 12 as data: what each changes, for whatever must follow it.

Each stable room version of the spec (content/rooms/v1.md ... v12.md) is a
`RoomVersion`, its differences feature flags, as Synapse models them
(synapse/api/room_versions.py). Three places consult it, and only these:

- the event format (events/sealing.py, hashing.py): event IDs `$random:server`
  carried in the event (v1, v2), the reference hash in standard base64 (v3) or
  URL-safe base64 (v4+), `redacts` at the top level (v1 to v10) or in the
  content (v11+), room IDs that are the create event's reference hash (v12);
- the redaction algorithm (events/redaction.py), on which signatures,
  reference hashes, the redacted events clients see and purging depend;
- the authorization rules (rooms/auth.py): `creator` in the create event
  (v1 to v10), the special `m.room.aliases` rules (v1 to v5), `notifications`
  levels (v6+), knocking (v7+), restricted joins (v8+), `knock_restricted`
  and integer-only power levels (v10+), creators with unlimited power (v12).

No state resolution (there is no federation: one server orders every room's
events), so the state resolution algorithm of a version has no flag here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class EventIdFormat(Enum):
    # `$` + a random local part + `:` + the server name, carried as `event_id` (v1, v2).
    LOCAL = "local"
    # `$` + the reference hash in standard unpadded base64 (v3).
    HASH_BASE64 = "hash_base64"
    # `$` + the reference hash in URL-safe unpadded base64 (v4+).
    HASH_URLSAFE = "hash_urlsafe"


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    stable: bool
    event_ids: EventIdFormat
    # The room ID is `!` + the create event's reference hash, which has no room_id (v12).
    room_ids_are_hashes: bool
    # m.room.aliases: its own auth rule (state key = the sender's server), and its
    # `aliases` survive redaction (v1 to v5).
    special_case_aliases: bool
    # Changes to the `notifications` levels need the power they name (v6+).
    limit_notifications_levels: bool
    # The `knock` membership and join rule (v7+).
    knocking: bool
    # The `restricted` join rule; its `allow` survives redaction (v8+).
    restricted_join_rule: bool
    # `join_authorised_via_users_server` survives redaction of a member event (v9+).
    keeps_join_authoriser: bool
    # The `knock_restricted` join rule (v10+).
    knock_restricted_join_rule: bool
    # Power levels are integers, never numeric strings (v10+).
    integer_power_levels: bool
    # The creator is the create event's sender; no `creator` in its content (v11+).
    implicit_creator: bool
    # The redaction algorithm of v11: the create event keeps its content, power levels
    # keep `invite`, a redaction keeps `redacts` (in its content), a member event keeps
    # `third_party_invite.signed`; `origin`, `membership`, `prev_state` go (v11+).
    updated_redaction_rules: bool
    # Creators (the sender and `additional_creators` of the create event) have
    # unlimited power and never appear in m.room.power_levels (v12).
    creators_have_unlimited_power: bool

    @property
    def redacts_in_content(self) -> bool:
        """Where a redaction names its target: its content (v11+) or the event (v1-10)."""
        return self.updated_redaction_rules


def _version(
    identifier: str,
    event_ids: EventIdFormat,
    *,
    special_case_aliases: bool = False,
    limit_notifications_levels: bool = True,
    knocking: bool = True,
    restricted_join_rule: bool = True,
    keeps_join_authoriser: bool = True,
    knock_restricted_join_rule: bool = True,
    integer_power_levels: bool = True,
    implicit_creator: bool = True,
    updated_redaction_rules: bool = True,
    room_ids_are_hashes: bool = False,
    creators_have_unlimited_power: bool = False,
) -> RoomVersion:
    return RoomVersion(
        identifier=identifier,
        stable=True,
        event_ids=event_ids,
        room_ids_are_hashes=room_ids_are_hashes,
        special_case_aliases=special_case_aliases,
        limit_notifications_levels=limit_notifications_levels,
        knocking=knocking,
        restricted_join_rule=restricted_join_rule,
        keeps_join_authoriser=keeps_join_authoriser,
        knock_restricted_join_rule=knock_restricted_join_rule,
        integer_power_levels=integer_power_levels,
        implicit_creator=implicit_creator,
        updated_redaction_rules=updated_redaction_rules,
        creators_have_unlimited_power=creators_have_unlimited_power,
    )


# What versions before 11 lack, from oldest to newest.
_BEFORE_V11 = {"implicit_creator": False, "updated_redaction_rules": False}
_BEFORE_V10 = {
    **_BEFORE_V11,
    "knock_restricted_join_rule": False,
    "integer_power_levels": False,
}
_BEFORE_V9 = {**_BEFORE_V10, "keeps_join_authoriser": False}
_BEFORE_V8 = {**_BEFORE_V9, "restricted_join_rule": False}
_BEFORE_V7 = {**_BEFORE_V8, "knocking": False}
_BEFORE_V6 = {**_BEFORE_V7, "special_case_aliases": True, "limit_notifications_levels": False}

V1 = _version("1", EventIdFormat.LOCAL, **_BEFORE_V6)
V2 = _version("2", EventIdFormat.LOCAL, **_BEFORE_V6)
V3 = _version("3", EventIdFormat.HASH_BASE64, **_BEFORE_V6)
V4 = _version("4", EventIdFormat.HASH_URLSAFE, **_BEFORE_V6)
V5 = _version("5", EventIdFormat.HASH_URLSAFE, **_BEFORE_V6)
V6 = _version("6", EventIdFormat.HASH_URLSAFE, **_BEFORE_V7)
V7 = _version("7", EventIdFormat.HASH_URLSAFE, **_BEFORE_V8)
V8 = _version("8", EventIdFormat.HASH_URLSAFE, **_BEFORE_V9)
V9 = _version("9", EventIdFormat.HASH_URLSAFE, **_BEFORE_V10)
V10 = _version("10", EventIdFormat.HASH_URLSAFE, **_BEFORE_V11)
V11 = _version("11", EventIdFormat.HASH_URLSAFE)
V12 = _version(
    "12",
    EventIdFormat.HASH_URLSAFE,
    room_ids_are_hashes=True,
    creators_have_unlimited_power=True,
)

KNOWN: dict[str, RoomVersion] = {
    version.identifier: version for version in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}

# A create event without `room_version` makes a version 1 room (the spec).
UNSTATED = V1
# The version of a chain that is no room (accounts, aliases) or whose version is not
# known where it is read: version 11, which every event was written in before rooms
# had versions here, so what was logged then still verifies as it was written.
LEGACY = V11


def room_version(identifier: object) -> RoomVersion | None:
    """The version named by a create event's `room_version`, or None if unknown."""
    return KNOWN.get(identifier) if isinstance(identifier, str) else None


def of_create_content(content: object) -> RoomVersion:
    """The version of a room from its create event's content (v1 when it names none;
    an unknown one is refused before it is ever logged, so LEGACY only guards junk)."""
    if not isinstance(content, Mapping) or "room_version" not in content:
        return UNSTATED
    return room_version(content["room_version"]) or LEGACY
