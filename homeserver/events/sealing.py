"""Sealing a new event: content hash, signature and event ID, with as few encodings as possible.

The signature and the reference hash (event ID) both cover the canonical JSON
of the redacted event without signatures, so one encoding serves both. The
results are the same as `hashing.event_id_for` and `signing.verify_event_signature`
compute independently (the audit uses those).

The room version decides the form (events/room_versions.py): its redaction
algorithm shapes what is signed and hashed; its event IDs are a random
`$local:server` carried in the event and signed with it (v1, v2), or the
reference hash (v3+: standard base64 in v3, URL-safe from v4).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any, Protocol

from unpaddedbase64 import encode_base64

from homeserver.events.canonical import encode
from homeserver.events.hashing import content_hash, hash_event_id
from homeserver.events.model import Draft, JsonDict
from homeserver.events.room_versions import LEGACY, EventIdFormat, RoomVersion, of_create_content
from homeserver.events.signing import ServerKey, signable_bytes

_LOCAL_ID_ALPHABET = string.ascii_letters + string.digits
_ROOM_CHAIN = "!"


class Head(Protocol):
    """The last event of a chain, which a new event follows."""

    @property
    def event_id(self) -> str: ...

    @property
    def depth(self) -> int: ...


class CreateEntry(Protocol):
    @property
    def content(self) -> Mapping[str, Any]: ...


class ChainState(Protocol):
    """What of a chain's state the form of its next event depends on."""

    def get(self, event_type: str, state_key: str = "") -> CreateEntry | None: ...


def chain_version(state: ChainState, draft: Draft) -> RoomVersion:
    """The room version whose form the draft's event takes: the version its create event
    names (the draft's own content for a create event); LEGACY for chains that are no
    room (accounts, aliases), the form every event had before rooms had versions."""
    if not draft.room_id.startswith(_ROOM_CHAIN):
        return LEGACY
    if draft.type == "m.room.create" and draft.state_key == "":
        return of_create_content(draft.content)
    create = state.get("m.room.create")
    return of_create_content(create.content) if create is not None else LEGACY


def unsigned_pdu(draft: Draft, head: Head | None, version: RoomVersion) -> JsonDict:
    """The event a draft makes after `head`, before hashes and signatures. A redaction
    names its target at the top level before version 11; a version 12 create event has
    no room ID (its reference hash is the room's ID)."""
    content = draft.content
    pdu: JsonDict = {
        "auth_events": [],
        "content": content,
        "depth": head.depth + 1 if head is not None else 1,
        "origin_server_ts": (
            draft.origin_server_ts
            if draft.origin_server_ts is not None
            else int(time.time() * 1000)
        ),
        "prev_events": [head.event_id] if head is not None else [],
        "room_id": draft.room_id,
        "sender": draft.sender,
        "type": draft.type,
    }
    if draft.state_key is not None:
        pdu["state_key"] = draft.state_key
    if draft.type == "m.room.redaction" and not version.redacts_in_content and "redacts" in content:
        pdu["redacts"] = content["redacts"]
        pdu["content"] = {key: value for key, value in content.items() if key != "redacts"}
    if version.room_ids_are_hashes and draft.type == "m.room.create" and head is None:
        del pdu["room_id"]
    return pdu


def local_event_id(server_name: str) -> str:
    """An event ID of room versions 1 and 2: `$` + 18 random characters + `:server`."""
    local = "".join(secrets.choice(_LOCAL_ID_ALPHABET) for _ in range(18))
    return f"${local}:{server_name}"


def seal(pdu: JsonDict, key: ServerKey, version: RoomVersion = LEGACY) -> tuple[str, bytes]:
    """Add `hashes` and `signatures` (and, in v1 and v2, `event_id`) to an unsigned `pdu`;
    return its event ID and logged bytes."""
    if version.event_ids is EventIdFormat.LOCAL:
        pdu["event_id"] = local_event_id(key.server_name)
    pdu["hashes"] = {"sha256": content_hash(pdu)}
    signable = signable_bytes(pdu, version)
    signature = key.key.sign(signable).signature
    pdu["signatures"] = {key.server_name: {key.key_id: encode_base64(signature)}}
    if version.event_ids is EventIdFormat.LOCAL:
        event_id = str(pdu["event_id"])
    else:
        event_id = hash_event_id(hashlib.sha256(signable).digest(), version)
    return event_id, encode(pdu)


def reference_room_id(pdu: JsonDict, version: RoomVersion) -> str:
    """The room ID a v12 create event makes: `!` + its reference hash (URL-safe), what its
    event ID is with `$`. `pdu` is the unsigned create event, without a room ID."""
    hashed = {**pdu, "hashes": {"sha256": content_hash(pdu)}}
    digest = hashlib.sha256(signable_bytes(hashed, version)).digest()
    return "!" + hash_event_id(digest, version)[1:]
