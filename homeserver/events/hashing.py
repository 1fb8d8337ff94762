"""Content hashes and reference hashes (event IDs), by the room version's format."""

from __future__ import annotations

import hashlib

from unpaddedbase64 import decode_base64, encode_base64

from homeserver.events.canonical import encode
from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact
from homeserver.events.room_versions import LEGACY, EventIdFormat, RoomVersion

_NOT_HASHED = ("unsigned", "signatures", "hashes", "event_id")


def content_hash(pdu: JsonDict) -> str:
    """sha256 over the full event minus unsigned, signatures and hashes (base64)."""
    stripped = {key: value for key, value in pdu.items() if key not in _NOT_HASHED}
    return encode_base64(hashlib.sha256(encode(stripped)).digest())


def reference_hash(pdu: JsonDict, version: RoomVersion = LEGACY) -> bytes:
    """sha256 over the redacted event minus signatures and unsigned."""
    redacted = redact(pdu, version)
    for key in ("signatures", "unsigned", "event_id"):
        redacted.pop(key, None)
    return hashlib.sha256(encode(redacted)).digest()


def hash_event_id(digest: bytes, version: RoomVersion) -> str:
    """`$` + the reference hash in the version's base64: standard in v3, URL-safe from v4."""
    return "$" + encode_base64(digest, urlsafe=version.event_ids is EventIdFormat.HASH_URLSAFE)


def event_id_for(pdu: JsonDict, version: RoomVersion = LEGACY) -> str:
    """The event ID of a version whose event IDs are reference hashes (v3+)."""
    return hash_event_id(reference_hash(pdu, version), version)


def content_hash_matches(pdu: JsonDict) -> bool:
    hashes = pdu.get("hashes")
    claimed = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(claimed, str):
        return False
    try:
        decode_base64(claimed)
    except Exception:
        return False
    return claimed == content_hash(pdu)
