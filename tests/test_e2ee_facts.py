"""E2EE facts in the log: the reducer, `audit replay` of them, and the JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema

from homeserver.events import types
from homeserver.events.content.e2ee import (
    CrossSigningKeyFact,
    DeviceKeysFact,
    SignaturesFact,
)
from homeserver.events.model import Event
from homeserver.projections import e2ee
from homeserver.projections.changes import (
    DEVICE_LIST_CHANGES,
    E2E_DEVICE_KEYS,
    E2E_SIGNATURES,
    Delete,
    Upsert,
)
from tests.audit_log import assert_replay_identical, server_verifier, verify
from tests.conftest import AppFactory
from tests.e2ee import CrossSigning, login_again, upload_device

SPEC = Path(__file__).resolve().parent.parent / "spec" / "events"
ALICE = "@alice:localhost"


def _event(event_type: str, content: dict[str, Any], state_key: str | None, position: int) -> Event:
    pdu: dict[str, Any] = {
        "room_id": ALICE,
        "sender": ALICE,
        "type": event_type,
        "content": content,
        "origin_server_ts": 1,
        "depth": position,
        "prev_events": [],
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event.from_pdu(f"$e{position}", pdu, position)


DEVICE_KEYS = {
    "user_id": ALICE,
    "device_id": "D1",
    "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
    "keys": {"ed25519:D1": "k"},
    "signatures": {ALICE: {"ed25519:D1": "s"}},
}


def test_new_device_keys_are_stored_and_change_the_owners_device_list() -> None:
    changes = e2ee.changes(_event(types.E2EE_DEVICE_KEYS, {"device_keys": DEVICE_KEYS}, "D1", 7))
    assert Upsert(DEVICE_LIST_CHANGES, {"user_id": ALICE, "stream_position": 7}) in changes
    stored = [c for c in changes if isinstance(c, Upsert) and c.table is E2E_DEVICE_KEYS]
    assert json.loads(stored[0].row["key_json"]) == DEVICE_KEYS


def test_a_deleted_device_takes_its_keys_with_it() -> None:
    changes = e2ee.changes(_event(types.ACCOUNT_DEVICE, {}, "D1", 9))
    assert Delete(E2E_DEVICE_KEYS, {"user_id": ALICE, "device_id": "D1"}) in changes
    assert Upsert(DEVICE_LIST_CHANGES, {"user_id": ALICE, "stream_position": 9}) in changes


def test_a_signature_on_another_users_key_changes_both_device_lists() -> None:
    content = {
        "signatures": [
            {
                "target_user_id": "@bob:localhost",
                "target_key_id": "bobmaster",
                "key_id": "ed25519:alicesigning",
                "signature": "sig",
            }
        ]
    }
    changes = e2ee.changes(_event(types.E2EE_SIGNATURES, content, None, 3))
    assert {c.row["user_id"] for c in changes if c.table is DEVICE_LIST_CHANGES} == {
        ALICE,
        "@bob:localhost",
    }
    assert [c.row["signer_id"] for c in changes if c.table is E2E_SIGNATURES] == [ALICE]


def test_a_fact_of_a_shape_this_version_cannot_read_changes_nothing() -> None:
    assert e2ee.changes(_event(types.E2EE_DEVICE_KEYS, {"device_keys": "nonsense"}, "D1", 4)) == []
    assert e2ee.changes(_event(types.MESSAGE, {"body": "x"}, None, 5)) == []


def test_the_fact_schemas_agree_with_the_models() -> None:
    examples: list[tuple[str, type[Any], dict[str, Any]]] = [
        (types.E2EE_DEVICE_KEYS, DeviceKeysFact, {"device_keys": DEVICE_KEYS}),
        (
            types.E2EE_CROSS_SIGNING_KEY,
            CrossSigningKeyFact,
            {"key": {"user_id": ALICE, "usage": ["master"], "keys": {"ed25519:m": "m"}}},
        ),
        (
            types.E2EE_SIGNATURES,
            SignaturesFact,
            {
                "signatures": [
                    {
                        "target_user_id": ALICE,
                        "target_key_id": "D1",
                        "key_id": "k",
                        "signature": "s",
                    }
                ]
            },
        ),
    ]
    for event_type, model, content in examples:
        schema = json.loads((SPEC / f"{event_type}.json").read_text())
        jsonschema.validate(content, schema)
        model.model_validate(content)
        for broken in ({}, {**content, next(iter(content)): 5}):
            refused_by_schema = not jsonschema.Draft202012Validator(schema).is_valid(broken)
            try:
                model.model_validate(broken)
                refused_by_model = False
            except ValueError:
                refused_by_model = True
            assert refused_by_schema and refused_by_model, (event_type, broken)


async def test_e2ee_facts_replay_identically_and_verify(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice, bob, _room = await hs.room_of_two()
    device = await upload_device(hs, alice, one_time_keys=2)
    await upload_device(hs, bob)
    alice_keys = CrossSigning(alice.user_id)
    bob_keys = CrossSigning(bob.user_id)
    await hs.ok("POST", "keys/device_signing/upload", alice_keys.upload_body(), user=alice)
    await hs.ok("POST", "keys/device_signing/upload", bob_keys.upload_body(), user=bob)
    signed_device = alice_keys.sign_with(alice_keys.self_signing, device.device_keys())
    signed_bob = alice_keys.sign_with(
        alice_keys.user_signing, bob_keys.key_object(bob_keys.master, "master")
    )
    await hs.ok(
        "POST",
        "keys/signatures/upload",
        {
            alice.user_id: {alice.device_id: signed_device},
            bob.user_id: {bob_keys.public(bob_keys.master): {**signed_bob, "user_id": bob.user_id}},
        },
        user=alice,
    )
    second = await login_again(hs, alice)
    await upload_device(hs, second)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": alice.password,
    }
    await hs.ok("DELETE", f"devices/{second.device_id}", {"auth": auth}, user=alice)

    result = await assert_replay_identical(fresh_dsn)
    assert result.events > 0
    assert await verify(fresh_dsn, server_verifier(hs)) is None
    conn = await asyncpg.connect(fresh_dsn)
    try:
        logged = await conn.fetchval(
            "SELECT count(*) FROM events WHERE json::jsonb->>'type' LIKE 'com.linkchat.e2ee.%'"
        )
        kept = await conn.fetchval("SELECT count(*) FROM e2e_device_keys")
    finally:
        await conn.close()
    assert logged == 3 + 6 + 1  # device keys, cross-signing keys, one signature upload
    assert kept == 2
