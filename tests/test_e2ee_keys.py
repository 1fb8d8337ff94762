"""/keys/upload, query, claim and changes over HTTP, with the spec's errors."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2ee import Device, login_again, upload_device
from tests.matrix import MatrixClient


async def test_uploaded_device_keys_are_what_another_user_queries(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await hs.ok("PUT", f"devices/{alice.device_id}", {"display_name": "phone"}, user=alice)
    device = await upload_device(hs, alice)

    reply = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)

    served = reply["device_keys"][alice.user_id][alice.device_id]
    uploaded = device.device_keys()
    assert served["keys"] == uploaded["keys"]
    assert served["signatures"] == uploaded["signatures"]
    assert served["unsigned"] == {"device_display_name": "phone"}
    assert reply["failures"] == {}


async def test_query_of_named_devices_leaves_out_the_others(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    second = await login_again(hs, alice)
    await upload_device(hs, alice)
    await upload_device(hs, second)

    reply = await hs.ok(
        "POST", "keys/query", {"device_keys": {alice.user_id: [second.device_id]}}, user=bob
    )
    assert list(reply["device_keys"][alice.user_id]) == [second.device_id]
    everything = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)
    assert set(everything["device_keys"][alice.user_id]) == {alice.device_id, second.device_id}


async def test_a_device_uploading_keys_for_another_device_gets_400(hs: MatrixClient) -> None:
    alice = await hs.register()
    other = await login_again(hs, alice)
    keys = Device(other).device_keys()

    reply = await hs.request("POST", "keys/upload", {"device_keys": keys}, user=alice)

    assert reply.status == 400
    assert reply.errcode == "M_BAD_JSON"


async def test_keys_for_another_user_get_400(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    keys = Device(bob).device_keys()
    reply = await hs.request("POST", "keys/upload", {"device_keys": keys}, user=alice)
    assert reply.status == 400


async def test_device_keys_not_signed_by_the_device_are_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    keys = Device(alice).device_keys()
    keys["algorithms"] = [*keys["algorithms"], "added.after.signing"]

    reply = await hs.request("POST", "keys/upload", {"device_keys": keys}, user=alice)

    assert reply.status == 400
    assert reply.errcode == "M_INVALID_SIGNATURE"


async def test_malformed_uploads_are_bad_json(hs: MatrixClient) -> None:
    alice = await hs.register()
    for body in (
        {"device_keys": {"user_id": alice.user_id}},
        {"one_time_keys": {"no-colon": "x"}},
        {"one_time_keys": {"signed_curve25519:a": 5}},
        {"one_time_keys": []},
    ):
        reply = await hs.request("POST", "keys/upload", body, user=alice)
        assert reply.status == 400, body
        assert reply.errcode == "M_BAD_JSON", (body, reply.body)


async def test_upload_answers_the_one_time_key_counts(hs: MatrixClient) -> None:
    alice = await hs.register()
    device = Device(alice)

    empty = await hs.ok("POST", "keys/upload", {}, user=alice)
    assert empty == {"one_time_key_counts": {"signed_curve25519": 0}}
    counted = await hs.ok(
        "POST", "keys/upload", {"one_time_keys": device.one_time_keys(5)}, user=alice
    )
    assert counted == {"one_time_key_counts": {"signed_curve25519": 5}}


async def test_a_one_time_key_id_reused_with_another_key_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    device = Device(alice)
    first = device.one_time_keys(1, prefix="same")
    await hs.ok("POST", "keys/upload", {"one_time_keys": first}, user=alice)

    again = await hs.ok("POST", "keys/upload", {"one_time_keys": first}, user=alice)
    assert again["one_time_key_counts"]["signed_curve25519"] == 1
    other = device.one_time_keys(1, prefix="same")
    reply = await hs.request("POST", "keys/upload", {"one_time_keys": other}, user=alice)
    assert reply.status == 400


async def test_claims_take_each_one_time_key_once_then_the_fallback_key(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    device = Device(alice)
    otks = device.one_time_keys(2)
    fallback = device.fallback_key()
    await hs.ok(
        "POST",
        "keys/upload",
        {"device_keys": device.device_keys(), "one_time_keys": otks, "fallback_keys": fallback},
        user=alice,
    )
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    claimed = [await hs.ok("POST", "keys/claim", want, user=bob) for _ in range(4)]

    keys = [reply["one_time_keys"][alice.user_id][alice.device_id] for reply in claimed]
    assert keys[0] | keys[1] == otks
    assert keys[2] == fallback and keys[3] == fallback
    assert all(reply["failures"] == {} for reply in claimed)
    counts = await hs.ok("POST", "keys/upload", {}, user=alice)
    assert counts["one_time_key_counts"] == {"signed_curve25519": 0}


async def test_two_concurrent_claimers_never_get_the_same_key(hs: MatrixClient) -> None:
    alice = await hs.register()
    claimers = [await hs.register() for _ in range(4)]
    device = Device(alice)
    await hs.ok("POST", "keys/upload", {"one_time_keys": device.one_time_keys(60)}, user=alice)
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    async def claim_many(user: Any) -> list[str]:
        taken = []
        for _ in range(15):
            reply = await hs.ok("POST", "keys/claim", want, user=user)
            taken += list(reply["one_time_keys"][alice.user_id][alice.device_id])
        return taken

    results = await asyncio.gather(*(claim_many(user) for user in claimers))

    every = [key for taken in results for key in taken]
    assert len(every) == 60
    assert len(set(every)) == 60
    after = await hs.ok("POST", "keys/claim", want, user=claimers[0])
    assert after["one_time_keys"] == {}


async def test_a_claim_for_an_unknown_device_is_reported_in_failures(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await upload_device(hs, alice, one_time_keys=1)
    want = {
        "one_time_keys": {
            alice.user_id: {alice.device_id: "signed_curve25519", "NOSUCHDEVICE": "x"},
            "@nobody:localhost": {"D": "signed_curve25519"},
        }
    }

    reply = await hs.ok("POST", "keys/claim", want, user=bob)

    assert list(reply["one_time_keys"][alice.user_id]) == [alice.device_id]
    assert reply["failures"][alice.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert reply["failures"]["@nobody:localhost"]["D"]["errcode"] == "M_NOT_FOUND"


async def test_a_device_without_keys_left_gets_nothing_and_no_failure(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    reply = await hs.ok("POST", "keys/claim", want, user=bob)
    assert reply == {"one_time_keys": {}, "failures": {}}


async def test_a_deleted_device_is_gone_from_queries_and_claims(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    second = await login_again(hs, alice)
    await upload_device(hs, second, one_time_keys=3)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": alice.password,
    }
    await hs.ok("DELETE", f"devices/{second.device_id}", {"auth": auth}, user=alice)

    query = await hs.ok("POST", "keys/query", {"device_keys": {alice.user_id: []}}, user=bob)
    assert query["device_keys"][alice.user_id] == {}
    want = {"one_time_keys": {alice.user_id: {second.device_id: "signed_curve25519"}}}
    claim = await hs.ok("POST", "keys/claim", want, user=bob)
    assert claim["one_time_keys"] == {}

    # The same device ID logged in anew has none of the old device's keys.
    again = await login_again(hs, alice, second.device_id)
    counts = await hs.ok("POST", "keys/upload", {}, user=again)
    assert counts["one_time_key_counts"] == {"signed_curve25519": 0}


async def test_query_and_claim_with_malformed_bodies_are_bad_json(hs: MatrixClient) -> None:
    alice = await hs.register()
    for path, body in (
        ("keys/query", {}),
        ("keys/query", {"device_keys": {alice.user_id: "all"}}),
        ("keys/claim", {"one_time_keys": {alice.user_id: ["x"]}}),
    ):
        reply = await hs.request("POST", path, body, user=alice)
        assert reply.status == 400, (path, body, reply.body)
        assert reply.errcode == "M_BAD_JSON"
    assert (await hs.request("POST", "keys/query", {"device_keys": {}})).status == 401


async def test_keys_changes_lists_who_changed_and_who_left(hs: MatrixClient) -> None:
    alice, bob, room = await hs.room_of_two()
    start = (await hs.ok("GET", "sync", user=alice))["next_batch"]
    await upload_device(hs, bob)

    changed = await hs.ok("GET", f"keys/changes?from={start}", user=alice)
    assert changed == {"changed": [bob.user_id], "left": []}

    middle = (await hs.ok("GET", "sync", user=alice))["next_batch"]
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    left = await hs.ok("GET", f"keys/changes?from={middle}", user=alice)
    assert left == {"changed": [], "left": [bob.user_id]}

    assert (await hs.request("GET", "keys/changes", user=alice)).errcode == "M_MISSING_PARAM"
    bad = await hs.request("GET", "keys/changes?from=nonsense", user=alice)
    assert bad.status == 400
