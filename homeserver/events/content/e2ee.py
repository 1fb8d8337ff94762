"""What the end-to-end encryption facts hold (homeserver/e2ee), in their owner's account chain.

The server never holds a secret key or a plaintext: these are the public keys and
signatures clients publish, logged so an auditor sees when a device's keys changed.

- `com.linkchat.e2ee.device_keys` (state key: the device ID):
  `{"device_keys": DeviceKeys}`, the object the device uploaded and signed
  (`user_id`, `device_id`, `algorithms`, `keys`, `signatures`), as uploaded.
- `com.linkchat.e2ee.cross_signing_key` (state key: `master`, `self_signing` or
  `user_signing`): `{"key": CrossSigningKey}` (`user_id`, `usage`, `keys`,
  `signatures`?), as uploaded.
- `com.linkchat.e2ee.signatures` (not state): `{"signatures": [Signature]}`, each
  `{target_user_id, target_key_id, key_id, signature}`: the owner's key `key_id`
  (a device's `ed25519:DEVICE` or a cross-signing key's `ed25519:PUBLICKEY`)
  signed the target's device (`target_key_id` its device ID) or cross-signing key
  (`target_key_id` its public key).

JSON Schemas: spec/events/com.linkchat.e2ee.*.json (tests/test_e2ee_facts.py checks
they agree with these models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homeserver.errors import bad_json, validation_problem
from homeserver.events import types

CROSS_SIGNING_USAGES = ("master", "self_signing", "user_signing")
# Signatures per fact: a fact stays well under the log's event size limit.
MAX_SIGNATURES_PER_FACT = 100


class _Content(BaseModel):
    # A logged event is forever: keys this version does not know are kept.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class DeviceKeys(_Content):
    user_id: str
    device_id: str
    algorithms: list[str]
    keys: dict[str, str]
    signatures: dict[str, dict[str, str]]


class CrossSigningKey(_Content):
    user_id: str
    usage: list[str] = Field(min_length=1)
    keys: dict[str, str] = Field(min_length=1, max_length=1)
    signatures: dict[str, dict[str, str]] = {}

    @property
    def key_id(self) -> str:
        """`ed25519:PUBLICKEY`, the one key's ID."""
        return next(iter(self.keys))

    @property
    def public_key(self) -> str:
        return next(iter(self.keys.values()))


class DeviceKeysFact(_Content):
    device_keys: DeviceKeys


class CrossSigningKeyFact(_Content):
    key: CrossSigningKey


class Signature(_Content):
    target_user_id: str
    target_key_id: str
    key_id: str
    signature: str


class SignaturesFact(_Content):
    signatures: list[Signature] = Field(min_length=1, max_length=MAX_SIGNATURES_PER_FACT)


FACT_TYPES = (types.E2EE_DEVICE_KEYS, types.E2EE_CROSS_SIGNING_KEY, types.E2EE_SIGNATURES)
_MODELS: dict[str, type[_Content]] = {
    types.E2EE_DEVICE_KEYS: DeviceKeysFact,
    types.E2EE_CROSS_SIGNING_KEY: CrossSigningKeyFact,
    types.E2EE_SIGNATURES: SignaturesFact,
}


def parse_fact(event_type: str, content: Mapping[str, Any]) -> _Content:
    """The model of an E2EE fact's content; M_BAD_JSON naming the field if it fits not."""
    try:
        return _MODELS[event_type].model_validate(dict(content))
    except ValidationError as error:
        raise bad_json(validation_problem(error, "content")) from None


def check_fact(
    event_type: str, owner: str, state_key: str | None, content: Mapping[str, Any]
) -> None:
    """The chain rule of E2EE facts: well formed, and about the chain's owner."""
    fact = parse_fact(event_type, content)
    if isinstance(fact, DeviceKeysFact):
        if fact.device_keys.user_id != owner or fact.device_keys.device_id != state_key:
            raise bad_json("device_keys must be the owner's, for the device of the state key")
    elif isinstance(fact, CrossSigningKeyFact):
        if fact.key.user_id != owner or state_key not in fact.key.usage:
            raise bad_json("a cross-signing key must be the owner's, of the usage of its state key")
        if state_key not in CROSS_SIGNING_USAGES:
            raise bad_json(f"unknown cross-signing key usage {state_key!r}")
    elif state_key is not None:
        raise bad_json("signature facts are not state")
