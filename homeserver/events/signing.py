"""The server's ed25519 signing key: generated on first start, used to sign every event."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signedjson.key import (
    decode_signing_key_base64,
    encode_signing_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey

from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact


@dataclass(frozen=True)
class ServerKey:
    server_name: str
    key: SigningKey

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.key.version}"

    @property
    def verify_key(self) -> VerifyKey:
        return get_verify_key(self.key)

    @property
    def public_key_base64(self) -> str:
        return str(encode_verify_key_base64(self.verify_key))

    def signature_for(self, pdu: JsonDict) -> dict[str, dict[str, str]]:
        """Signatures over the redacted form of `pdu`, as Matrix signs events."""
        signed = sign_json(_signable(pdu), self.server_name, self.key)
        return signed["signatures"]  # type: ignore[no-any-return]


def _signable(pdu: JsonDict) -> JsonDict:
    redacted = redact(pdu)
    for key in ("signatures", "unsigned", "event_id"):
        redacted.pop(key, None)
    return redacted


def verify_event_signature(pdu: JsonDict, server_name: str, verify_key: Any) -> bool:
    signable = _signable(pdu)
    signable["signatures"] = pdu.get("signatures", {})
    try:
        verify_signed_json(signable, server_name, verify_key)
    except SignatureVerifyException:
        return False
    return True


def load_or_create_key(path: Path, server_name: str) -> ServerKey:
    """Read the signing key at `path`, creating it (mode 0600) on first start."""
    if path.exists():
        version, secret = path.read_text().split()[1:3]
        return ServerKey(server_name, decode_signing_key_base64("ed25519", version, secret))
    key = generate_signing_key("a_" + os.urandom(3).hex())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"ed25519 {key.version} {encode_signing_key_base64(key)}\n")
    return ServerKey(server_name, key)
