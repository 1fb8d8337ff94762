"""The redaction algorithm of each room version (events/room_versions.py).

A redacted event keeps only the keys that authorization and the hash chain
need. Signatures and event IDs are computed over the redacted form, so the
original content can later be purged while the log still verifies.

Versions 1 to 10 keep `origin`, `membership` and `prev_state` at the top level,
and little of a create event (`creator`); version 11 keeps the whole create
content, power levels' `invite`, a redaction's `redacts` and a member's
`third_party_invite.signed`. In between: `m.room.aliases` keeps `aliases` up to
version 5, join rules keep `allow` from version 8, a member keeps
`join_authorised_via_users_server` from version 9.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.events.model import JsonDict
from homeserver.events.room_versions import LEGACY, RoomVersion

KEPT_TOP_LEVEL = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
# Kept at the top level too before version 11.
KEPT_TOP_LEVEL_BEFORE_V11 = KEPT_TOP_LEVEL | {"origin", "membership", "prev_state"}

_POWER_LEVELS_BEFORE_V11 = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)


def kept_content(event_type: str, version: RoomVersion) -> frozenset[str] | None:
    """The content keys an event of this type keeps when redacted in this version;
    None: the whole content."""
    v11 = version.updated_redaction_rules
    if event_type == "m.room.member":
        if version.keeps_join_authoriser:
            return frozenset({"membership", "join_authorised_via_users_server"})
        return frozenset({"membership"})
    if event_type == "m.room.create":
        return None if v11 else frozenset({"creator"})
    if event_type == "m.room.join_rules":
        if version.restricted_join_rule:
            return frozenset({"join_rule", "allow"})
        return frozenset({"join_rule"})
    if event_type == "m.room.power_levels":
        return _POWER_LEVELS_BEFORE_V11 | {"invite"} if v11 else _POWER_LEVELS_BEFORE_V11
    if event_type == "m.room.history_visibility":
        return frozenset({"history_visibility"})
    if event_type == "m.room.redaction" and v11:
        return frozenset({"redacts"})
    if event_type == "m.room.aliases" and version.special_case_aliases:
        return frozenset({"aliases"})
    return frozenset()


def redact_content(
    event_type: str, content: Mapping[str, Any], version: RoomVersion = LEGACY
) -> dict[str, Any]:
    kept = kept_content(event_type, version)
    if kept is None:
        return dict(content)
    redacted = {key: value for key, value in content.items() if key in kept}
    if event_type == "m.room.member" and version.updated_redaction_rules:
        invite = content.get("third_party_invite")
        if isinstance(invite, dict) and "signed" in invite:
            redacted["third_party_invite"] = {"signed": invite["signed"]}
    return redacted


def redact(event: JsonDict, version: RoomVersion = LEGACY) -> JsonDict:
    """The redacted form of an event (PDU or client form) of a room of `version`."""
    top = KEPT_TOP_LEVEL if version.updated_redaction_rules else KEPT_TOP_LEVEL_BEFORE_V11
    redacted = {key: value for key, value in event.items() if key in top}
    redacted["content"] = redact_content(event["type"], event.get("content", {}), version)
    return redacted
