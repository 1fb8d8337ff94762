"""Cross-signing: /keys/device_signing/upload (UIA but for the first upload, as Synapse) and
/keys/signatures/upload with per-key failures."""

from __future__ import annotations

from typing import Any

from tests.e2ee import CrossSigning, upload_device
from tests.matrix import MatrixClient, User


def _password_auth(user: User, session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def _cross_signed(hs: MatrixClient, user: User) -> CrossSigning:
    keys = CrossSigning(user.user_id)
    await hs.ok("POST", "keys/device_signing/upload", keys.upload_body(), user=user)
    return keys


async def test_the_first_cross_signing_upload_needs_no_interactive_auth(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    keys = await _cross_signed(hs, alice)

    theirs = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)
    assert theirs["master_keys"][alice.user_id] == keys.key_object(keys.master, "master")
    assert theirs["self_signing_keys"][alice.user_id] == keys.key_object(
        keys.self_signing, "self_signing"
    )
    # Only its owner sees a user-signing key.
    assert theirs["user_signing_keys"] == {}
    own = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=alice)
    assert own["user_signing_keys"][alice.user_id] == keys.key_object(
        keys.user_signing, "user_signing"
    )


async def test_replacing_cross_signing_keys_needs_the_password(hs: MatrixClient) -> None:
    alice = await hs.register()
    await _cross_signed(hs, alice)
    replacement = CrossSigning(alice.user_id).upload_body()

    challenge = await hs.request("POST", "keys/device_signing/upload", replacement, user=alice)
    assert challenge.status == 401
    assert {"stages": ["m.login.password"]} in challenge.body["flows"]
    wrong = {**_password_auth(alice, challenge.body["session"]), "password": "wrong"}
    refused = await hs.request(
        "POST", "keys/device_signing/upload", {**replacement, "auth": wrong}, user=alice
    )
    assert (refused.status, refused.errcode) == (401, "M_FORBIDDEN")

    auth = _password_auth(alice, challenge.body["session"])
    await hs.ok("POST", "keys/device_signing/upload", {**replacement, "auth": auth}, user=alice)
    own = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=alice)
    assert own["master_keys"][alice.user_id] == replacement["master_key"]


async def test_uploading_the_same_keys_again_needs_no_interactive_auth(hs: MatrixClient) -> None:
    alice = await hs.register()
    keys = await _cross_signed(hs, alice)
    await hs.ok("POST", "keys/device_signing/upload", keys.upload_body(), user=alice)


async def test_a_self_signing_key_not_signed_by_the_master_key_is_refused(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    keys = CrossSigning(alice.user_id)
    body = keys.upload_body()
    body["self_signing_key"] = CrossSigning(alice.user_id).key_object(
        keys.self_signing, "self_signing"
    )
    reply = await hs.request("POST", "keys/device_signing/upload", body, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_SIGNATURE")

    others = CrossSigning("@someone:localhost").upload_body()
    reply = await hs.request("POST", "keys/device_signing/upload", others, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    alone = {"self_signing_key": body["self_signing_key"]}
    reply = await hs.request("POST", "keys/device_signing/upload", alone, user=alice)
    assert (reply.status, reply.errcode) == (400, "M_MISSING_PARAM")


async def test_a_device_signed_by_the_self_signing_key_shows_the_signature(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    device = await upload_device(hs, alice)
    keys = await _cross_signed(hs, alice)
    signed = keys.sign_with(keys.self_signing, device.device_keys())

    reply = await hs.ok(
        "POST", "keys/signatures/upload", {alice.user_id: {alice.device_id: signed}}, user=alice
    )
    assert reply == {"failures": {}}

    seen = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)
    signatures = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{keys.public(keys.self_signing)}" in signatures
    assert device.key_id in signatures


async def test_the_master_key_signed_by_a_device_shows_the_signature(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    device = await upload_device(hs, alice)
    keys = await _cross_signed(hs, alice)
    signed = device.sign(keys.key_object(keys.master, "master"))

    reply = await hs.ok(
        "POST",
        "keys/signatures/upload",
        {alice.user_id: {keys.public(keys.master): signed}},
        user=alice,
    )
    assert reply == {"failures": {}}
    seen = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)
    assert device.key_id in seen["master_keys"][alice.user_id]["signatures"][alice.user_id]


async def test_a_user_signing_signature_is_seen_only_by_its_signer(hs: MatrixClient) -> None:
    alice, bob, carol = await hs.register(), await hs.register(), await hs.register()
    alice_keys = await _cross_signed(hs, alice)
    bob_keys = await _cross_signed(hs, bob)
    signed = alice_keys.sign_with(
        alice_keys.user_signing, bob_keys.key_object(bob_keys.master, "master")
    )
    signed = {**signed, "user_id": bob.user_id}
    # sign_with signs as alice: the signature is alice's on bob's master key.
    reply = await hs.ok(
        "POST",
        "keys/signatures/upload",
        {bob.user_id: {bob_keys.public(bob_keys.master): signed}},
        user=alice,
    )
    assert reply == {"failures": {}}

    by_alice = await hs.ok("POST", "keys/query", {"device_keys": {bob.user_id: []}}, user=alice)
    assert alice.user_id in by_alice["master_keys"][bob.user_id]["signatures"]
    by_carol = await hs.ok("POST", "keys/query", {"device_keys": {bob.user_id: []}}, user=carol)
    assert alice.user_id not in by_carol["master_keys"][bob.user_id].get("signatures", {})


async def test_bad_signatures_are_reported_per_key_and_the_good_ones_kept(
    hs: MatrixClient,
) -> None:
    alice, bob = await hs.register(), await hs.register()
    device = await upload_device(hs, alice)
    keys = await _cross_signed(hs, alice)
    good = keys.sign_with(keys.self_signing, device.device_keys())
    forged = keys.sign_with(keys.user_signing, device.device_keys())
    forged["signatures"] = {
        alice.user_id: {f"ed25519:{keys.public(keys.self_signing)}": "AAAA" * 21 + "AA"}
    }

    reply = await hs.ok(
        "POST",
        "keys/signatures/upload",
        {
            alice.user_id: {alice.device_id: good, "NOSUCHDEVICE": good},
            bob.user_id: {"somekey": good},
        },
        user=alice,
    )
    failures = reply["failures"]
    assert failures[alice.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id]["somekey"]["errcode"] in ("M_MISSING_PARAM", "M_NOT_FOUND")
    assert alice.device_id not in failures[alice.user_id]

    bad = await hs.ok(
        "POST", "keys/signatures/upload", {alice.user_id: {alice.device_id: forged}}, user=alice
    )
    assert bad["failures"][alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"


async def test_cross_signing_changes_reach_the_device_lists_of_room_members(
    hs: MatrixClient,
) -> None:
    alice, bob, _room = await hs.room_of_two()
    since = (await hs.ok("GET", "sync", user=bob))["next_batch"]
    await _cross_signed(hs, alice)
    reply = await hs.ok("GET", f"sync?since={since}&timeout=10000", user=bob)
    assert alice.user_id in reply["device_lists"]["changed"]
