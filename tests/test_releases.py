"""The r0 prefix: endpoints that existed in r0 answer there as under /v3 (as Synapse)."""

from __future__ import annotations

from tests.e2ee import Device
from tests.matrix import MatrixClient

R0 = "/_matrix/client/r0/"


async def test_r0_login_lists_the_login_types_and_logs_in(hs: MatrixClient) -> None:
    alice = await hs.register()
    flows = await hs.ok("GET", R0 + "login")
    assert flows == await hs.ok("GET", "login")
    assert {flow["type"] for flow in flows["flows"]} == {"m.login.password", "m.login.token"}
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": alice.password,
    }
    session = await hs.ok("POST", R0 + "login", body)
    whoami = await hs.ok("GET", R0 + "account/whoami", token=session["access_token"])
    assert whoami["user_id"] == alice.user_id


async def test_r0_serves_sync_rooms_and_keys_like_v3(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = (await hs.ok("POST", R0 + "createRoom", {"name": "r0"}, user=alice))["room_id"]
    sent = await hs.ok(
        "PUT", R0 + f"rooms/{room}/send/m.room.message/t1", {"body": "x"}, user=alice
    )
    synced = await hs.ok("GET", R0 + "sync", user=alice)
    events = synced["rooms"]["join"][room]["timeline"]["events"]
    assert sent["event_id"] in [event["event_id"] for event in events]
    counts = await hs.ok(
        "POST", R0 + "keys/upload", {"device_keys": Device(alice).device_keys()}, user=alice
    )
    assert counts == {"one_time_key_counts": {"signed_curve25519": 0}}


async def test_endpoints_newer_than_r0_are_not_under_r0(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request("POST", R0 + "keys/device_signing/upload", {}, user=alice)
    assert (reply.status, reply.errcode) == (404, "M_UNRECOGNIZED")
    assert (await hs.request("GET", "/_matrix/client/r0/nonsense", user=alice)).status == 404
