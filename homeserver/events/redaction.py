"""The redaction algorithm of Matrix room version 11.

A redacted event keeps only the keys that authorization and the hash chain
need. Signatures and event IDs are computed over the redacted form, so the
original content can later be purged while the log still verifies.
"""

from __future__ import annotations

from typing import Any

from homeserver.events.model import JsonDict

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

# Content keys kept per event type; a type absent here keeps no content.
# `None` means the whole content is kept.
KEPT_CONTENT: dict[str, frozenset[str] | None] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": None,
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": frozenset(
        {
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        }
    ),
    "m.room.history_visibility": frozenset({"history_visibility"}),
    "m.room.redaction": frozenset({"redacts"}),
}


def redact_content(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    kept = KEPT_CONTENT.get(event_type, frozenset())
    if kept is None:
        return dict(content)
    redacted = {key: value for key, value in content.items() if key in kept}
    if event_type == "m.room.member":
        invite = content.get("third_party_invite")
        if isinstance(invite, dict) and "signed" in invite:
            redacted["third_party_invite"] = {"signed": invite["signed"]}
    return redacted


def redact(event: JsonDict) -> JsonDict:
    """The redacted form of an event (PDU or client form)."""
    redacted = {key: value for key, value in event.items() if key in KEPT_TOP_LEVEL}
    redacted["content"] = redact_content(event["type"], event.get("content", {}))
    return redacted
