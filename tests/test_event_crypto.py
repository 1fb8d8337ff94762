"""Redaction, content hashes, event IDs and signatures (room version 11), without a database."""

from __future__ import annotations

import copy
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from homeserver.events.hashing import content_hash, content_hash_matches, event_id_for
from homeserver.events.model import JsonDict
from homeserver.events.redaction import redact
from homeserver.events.signing import ServerKey, load_or_create_key, verify_event_signature

SERVER = "example.org"
ALICE = "@alice:example.org"


@pytest.fixture
def key(tmp_path: Path) -> ServerKey:
    return load_or_create_key(tmp_path / "k", SERVER)


def pdu_of(event_type: str, content: dict[str, Any], **fields: Any) -> JsonDict:
    pdu: JsonDict = {
        "room_id": "!room:example.org",
        "sender": ALICE,
        "type": event_type,
        "content": content,
        "origin_server_ts": 1_700_000_000_000,
        "depth": 7,
        "prev_events": ["$previous"],
        "auth_events": [],
        **fields,
    }
    pdu["hashes"] = {"sha256": content_hash(pdu)}
    return pdu


def signed(key: ServerKey, pdu: JsonDict) -> JsonDict:
    return {**pdu, "signatures": key.signature_for(pdu)}


def message() -> JsonDict:
    return pdu_of("m.room.message", {"msgtype": "m.text", "body": "secret plans"})


# --- redaction ------------------------------------------------------------------------------


def test_redaction_keeps_only_the_protocol_keys_at_top_level() -> None:
    pdu = {
        **message(),
        "state_key": "",
        "signatures": {SERVER: {"ed25519:x": "sig"}},
        "unsigned": {"age": 5},
        "origin": SERVER,
        "membership": "join",
        "prev_state": [],
        "extra": 1,
    }
    assert set(redact(pdu)) == {
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


@pytest.mark.parametrize(
    ("event_type", "content", "kept"),
    [
        (
            "m.room.member",
            {
                "membership": "join",
                "join_authorised_via_users_server": "@mod:example.org",
                "displayname": "Alice",
                "avatar_url": "mxc://example.org/a",
                "reason": "hello",
            },
            {"membership": "join", "join_authorised_via_users_server": "@mod:example.org"},
        ),
        (
            "m.room.member",
            {
                "membership": "invite",
                "third_party_invite": {"display_name": "a@b.c", "signed": {"token": "t"}},
            },
            {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}},
        ),
        (
            "m.room.create",
            {"room_version": "11", "m.federate": False, "type": "m.space", "extra": [1]},
            {"room_version": "11", "m.federate": False, "type": "m.space", "extra": [1]},
        ),
        (
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        ),
        (
            "m.room.power_levels",
            {
                "ban": 50,
                "events": {"m.room.name": 50},
                "events_default": 0,
                "invite": 0,
                "kick": 50,
                "redact": 50,
                "state_default": 50,
                "users": {ALICE: 100},
                "users_default": 0,
                "notifications": {"room": 50},
                "historical": 100,
            },
            {
                "ban": 50,
                "events": {"m.room.name": 50},
                "events_default": 0,
                "invite": 0,
                "kick": 50,
                "redact": 50,
                "state_default": 50,
                "users": {ALICE: 100},
                "users_default": 0,
            },
        ),
        (
            "m.room.history_visibility",
            {"history_visibility": "joined", "x": 1},
            {"history_visibility": "joined"},
        ),
        ("m.room.redaction", {"redacts": "$target", "reason": "spam"}, {"redacts": "$target"}),
        ("m.room.aliases", {"aliases": ["#a:example.org"]}, {}),
        ("m.room.name", {"name": "Plans"}, {}),
        ("m.room.message", {"msgtype": "m.text", "body": "secret"}, {}),
        ("com.linkchat.device.command", {"command": "ring", "args": {}}, {}),
    ],
)
def test_redaction_keeps_exactly_the_content_keys_its_type_needs(
    event_type: str, content: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert redact(pdu_of(event_type, content))["content"] == kept


def test_redaction_leaves_the_original_untouched_and_is_idempotent() -> None:
    pdu = message()
    original = copy.deepcopy(pdu)
    once = redact(pdu)
    assert pdu == original
    assert redact(once) == once


# --- content hash ---------------------------------------------------------------------------


def test_content_hash_changes_when_content_changes() -> None:
    pdu = message()
    edited = {**pdu, "content": {"msgtype": "m.text", "body": "secret plan"}}
    assert content_hash(edited) != content_hash(pdu)


def test_content_hash_ignores_signatures_unsigned_and_hashes() -> None:
    pdu = message()
    decorated = {
        **pdu,
        "signatures": {SERVER: {"ed25519:x": "sig"}},
        "unsigned": {"age": 1},
        "hashes": {"sha256": "other"},
    }
    assert content_hash(decorated) == content_hash(pdu)


def test_content_hash_check_detects_tampered_content() -> None:
    pdu = message()
    assert content_hash_matches(pdu)
    assert not content_hash_matches({**pdu, "content": {"body": "forged"}})
    assert not content_hash_matches({key: value for key, value in pdu.items() if key != "hashes"})
    assert not content_hash_matches({**pdu, "hashes": {"sha256": "not base64!"}})
    assert not content_hash_matches({**pdu, "hashes": "tampered"})


# --- event ID -------------------------------------------------------------------------------


def test_event_id_is_dollar_prefixed_url_safe_unpadded_base64_of_sha256() -> None:
    event_id = event_id_for(message())
    assert re.fullmatch(r"\$[A-Za-z0-9_-]{43}", event_id)


def test_event_id_is_stable() -> None:
    pdu = message()
    reordered = dict(reversed(list(copy.deepcopy(pdu).items())))
    assert event_id_for(pdu) == event_id_for(pdu) == event_id_for(reordered)


def test_event_id_survives_redaction_unsigned_data_and_signatures(key: ServerKey) -> None:
    pdu = message()
    event_id = event_id_for(pdu)
    assert event_id_for(redact(pdu)) == event_id
    assert event_id_for({**pdu, "unsigned": {"age": 10}}) == event_id
    assert event_id_for(signed(key, pdu)) == event_id


def test_event_id_changes_with_any_covered_field() -> None:
    pdu = message()
    event_id = event_id_for(pdu)
    assert event_id_for(pdu_of("m.room.message", {"body": "other"})) != event_id
    assert event_id_for({**pdu, "sender": "@mallory:example.org"}) != event_id
    assert event_id_for({**pdu, "depth": 8}) != event_id
    assert event_id_for({**pdu, "prev_events": ["$elsewhere"]}) != event_id


# --- signatures -----------------------------------------------------------------------------


def test_signed_event_verifies(key: ServerKey) -> None:
    pdu = signed(key, message())
    assert set(pdu["signatures"]) == {SERVER}
    assert set(pdu["signatures"][SERVER]) == {key.key_id}
    assert verify_event_signature(pdu, SERVER, key.verify_key)


@pytest.mark.parametrize(
    "tamper",
    [
        {"sender": "@mallory:example.org"},
        {"origin_server_ts": 1},
        {"prev_events": ["$forged"]},
        {"hashes": {"sha256": "AAAA"}},
        {"type": "m.room.power_levels"},
    ],
)
def test_signature_fails_after_tampering_with_a_kept_field(
    key: ServerKey, tamper: dict[str, Any]
) -> None:
    pdu = {**signed(key, message()), **tamper}
    assert not verify_event_signature(pdu, SERVER, key.verify_key)


def test_signature_fails_after_tampering_with_kept_content(key: ServerKey) -> None:
    pdu = signed(key, pdu_of("m.room.member", {"membership": "join"}, state_key=ALICE))
    forged = {**pdu, "content": {"membership": "ban"}}
    assert not verify_event_signature(forged, SERVER, key.verify_key)


def test_signature_still_verifies_after_content_is_purged(key: ServerKey) -> None:
    pdu = signed(key, message())
    purged = redact(pdu)
    assert purged["content"] == {}
    assert verify_event_signature(purged, SERVER, key.verify_key)
    # The content hash still names the original, so purging is visible, not silent.
    assert not content_hash_matches(purged)
    assert event_id_for(purged) == event_id_for(pdu)


def test_signature_fails_for_another_server_or_key(key: ServerKey, tmp_path: Path) -> None:
    pdu = signed(key, message())
    other = load_or_create_key(tmp_path / "other", SERVER)
    assert not verify_event_signature(pdu, "elsewhere.example", key.verify_key)
    assert not verify_event_signature(pdu, SERVER, other.verify_key)
    assert not verify_event_signature({**pdu, "signatures": {}}, SERVER, key.verify_key)


# --- signing key file -----------------------------------------------------------------------


def test_signing_key_file_is_private_to_the_server(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.key"
    load_or_create_key(path, SERVER)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_signing_key_is_the_same_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = load_or_create_key(path, SERVER)
    again = load_or_create_key(path, SERVER)
    assert again.key_id == first.key_id
    assert re.fullmatch(r"ed25519:\w+", first.key_id)
    assert again.public_key_base64 == first.public_key_base64
    pdu = signed(again, message())
    assert verify_event_signature(pdu, SERVER, first.verify_key)
    assert pdu["signatures"] == signed(first, message())["signatures"]
