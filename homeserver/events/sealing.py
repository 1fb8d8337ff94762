"""Sealing a new event: content hash, signature and event ID, with as few encodings as possible.

The signature and the reference hash (event ID) both cover the canonical JSON
of the redacted event without signatures, so one encoding serves both. The
results are the same as `hashing.event_id_for` and `signing.verify_event_signature`
compute independently (the audit uses those).
"""

from __future__ import annotations

import hashlib

from unpaddedbase64 import encode_base64

from homeserver.events.canonical import encode
from homeserver.events.hashing import content_hash
from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact
from homeserver.events.signing import ServerKey


def seal(pdu: JsonDict, key: ServerKey) -> tuple[str, bytes]:
    """Add `hashes` and `signatures` to an unsigned `pdu`; return its event ID and logged bytes."""
    pdu["hashes"] = {"sha256": content_hash(pdu)}
    signable = encode(redact(pdu))
    signature = key.key.sign(signable).signature
    pdu["signatures"] = {key.server_name: {key.key_id: encode_base64(signature)}}
    event_id = "$" + encode_base64(hashlib.sha256(signable).digest(), urlsafe=True)
    return event_id, encode(pdu)
