"""Checking the ed25519 signatures clients put on their keys (the spec's "Signing JSON")."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from homeserver.events.canonical import encode
from homeserver.events.signing import signature_matches


def _public_key(base64_key: str) -> bytes | None:
    try:
        raw = binascii.a2b_base64(base64_key + "=" * (-len(base64_key) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def signable(value: Mapping[str, Any]) -> dict[str, Any]:
    """What a signature covers: the object without `signatures` and `unsigned`."""
    return {key: item for key, item in value.items() if key not in ("signatures", "unsigned")}


def signature_of(value: Mapping[str, Any], user_id: str, key_id: str) -> str | None:
    signatures = value.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, Mapping) else None
    found = by_user.get(key_id) if isinstance(by_user, Mapping) else None
    return found if isinstance(found, str) else None


def is_signed_by(value: Mapping[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    """Whether `value` carries a valid signature by `user_id`'s key `key_id`
    (`ed25519:...`), whose public key (unpadded base64) is `public_key`."""
    signature = signature_of(value, user_id, key_id)
    raw = _public_key(public_key)
    if signature is None or raw is None:
        return False
    return signature_matches(encode(signable(value)), signature, raw)
