"""Device keys, cross-signing keys and signatures, and when each user's device list changed.

From the E2EE facts in the account chains (events/content/e2ee.py) and the device
facts: a device that is added, renamed or removed changes its owner's device list
too (its keys go with it), as a new identity key or cross-signing key does.
`device_list_changes` keeps, per user, the position of the latest such change:
"whose device list changed after position P" is then an index range, whatever the
number of rooms the asking user is in.
"""

from __future__ import annotations

from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.canonical import encode
from homeserver.events.content.e2ee import (
    CrossSigningKeyFact,
    DeviceKeysFact,
    SignaturesFact,
    parse_fact,
)
from homeserver.events.model import Event
from homeserver.projections.changes import (
    DEVICE_LIST_CHANGES,
    E2E_CROSS_SIGNING_KEYS,
    E2E_DEVICE_KEYS,
    E2E_SIGNATURES,
    Change,
    Delete,
    Upsert,
)

_TYPES = frozenset(
    {
        types.ACCOUNT_DEVICE,
        types.E2EE_DEVICE_KEYS,
        types.E2EE_CROSS_SIGNING_KEY,
        types.E2EE_SIGNATURES,
    }
)


def changes(event: Event) -> list[Change]:
    if event.type not in _TYPES or not types.is_account_chain(event.room_id):
        return []
    owner = event.room_id
    position = event.stream_position
    if event.type == types.ACCOUNT_DEVICE:
        found: list[Change] = [_changed(owner, position)]
        if not event.content and event.state_key is not None:
            found.append(Delete(E2E_DEVICE_KEYS, {"user_id": owner, "device_id": event.state_key}))
        return found
    try:
        fact = parse_fact(event.type, event.content)
    except MatrixError:
        return []  # refused at append; a shape this version cannot read changes nothing
    if isinstance(fact, DeviceKeysFact) and event.state_key is not None:
        return [
            Upsert(
                E2E_DEVICE_KEYS,
                {
                    "user_id": owner,
                    "device_id": event.state_key,
                    "key_json": encode(event.content["device_keys"]).decode(),
                    "stream_position": position,
                },
            ),
            _changed(owner, position),
        ]
    if isinstance(fact, CrossSigningKeyFact) and event.state_key is not None:
        return [
            Upsert(
                E2E_CROSS_SIGNING_KEYS,
                {
                    "user_id": owner,
                    "usage": event.state_key,
                    "key_id": fact.key.key_id,
                    "key_json": encode(event.content["key"]).decode(),
                    "stream_position": position,
                },
            ),
            _changed(owner, position),
        ]
    if isinstance(fact, SignaturesFact):
        found = [
            Upsert(
                E2E_SIGNATURES,
                {
                    "signer_id": owner,
                    "key_id": signature.key_id,
                    "target_user_id": signature.target_user_id,
                    "target_key_id": signature.target_key_id,
                    "signature": signature.signature,
                    "stream_position": position,
                },
            )
            for signature in fact.signatures
        ]
        # The signer's devices re-read the targets (one of them, a user they verified);
        # a target's device list changed with a new signature on it.
        targets = {owner} | {signature.target_user_id for signature in fact.signatures}
        found += [_changed(user_id, position) for user_id in sorted(targets)]
        return found
    return []


def _changed(user_id: str, position: int) -> Change:
    return Upsert(DEVICE_LIST_CHANGES, {"user_id": user_id, "stream_position": position})
