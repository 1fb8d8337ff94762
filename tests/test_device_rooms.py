"""Device accounts and rooms: creation, login tokens, capabilities, grants, retirement."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.conftest import AppFactory
from tests.devices import (
    CAPABILITIES,
    COMMAND,
    DEVICE_CAPABILITIES,
    EXPIRED,
    RESULT,
    V1,
    check_shape,
    commands,
    create_device,
    device_login,
    device_path,
    paired_device,
    publish_capabilities,
    result_content,
    send_command,
    send_event,
    token_login,
)
from tests.matrix import MatrixClient, User


async def _state(hs: MatrixClient, user: User, room_id: str, event_type: str) -> dict[str, Any]:
    body = await hs.ok("GET", f"rooms/{room_id}/state/{event_type}", user=user)
    return dict(body)


async def test_owner_creates_a_device_with_its_own_account_room_and_login_token(
    hs: MatrixClient,
) -> None:
    owner = await hs.register()
    created = await create_device(hs, owner, "Living room PC")
    check_shape("create_device_response", created)
    localpart = owner.user_id[1:].partition(":")[0]
    assert created["device_user_id"].startswith(f"@{localpart}.dev.")
    assert created["room_id"].startswith("!")
    assert created["login_token"] and created["expires_in_ms"] == 120_000

    room = created["room_id"]
    create = await _state(hs, owner, room, "m.room.create")
    assert create["type"] == "com.linkchat.device"
    assert create["device_user_id"] == created["device_user_id"]
    levels = await _state(hs, owner, room, "m.room.power_levels")
    assert levels["users"][owner.user_id] == 100
    assert levels["users"][created["device_user_id"]] < levels["events"][COMMAND] == 50
    members = await hs.ok("GET", f"rooms/{room}/joined_members", user=owner)
    assert created["device_user_id"] in members["joined"]

    listed = await hs.ok("GET", f"{V1}/devices", user=owner)
    check_shape("devices_response", listed)
    assert listed["devices"] == [
        {
            "device_user_id": created["device_user_id"],
            "room_id": room,
            "display_name": "Living room PC",
            "created_ts": listed["devices"][0]["created_ts"],
            "grants": [],
        }
    ]


async def test_devices_list_shows_only_the_callers_devices(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    await create_device(hs, alice, "a1")
    await create_device(hs, alice, "a2")
    await create_device(hs, bob, "b1")
    mine = await hs.ok("GET", f"{V1}/devices", user=alice)
    assert [d["display_name"] for d in mine["devices"]] == ["a1", "a2"]
    empty = await hs.ok("GET", f"{V1}/devices", user=await hs.register())
    assert empty["devices"] == []


async def test_creating_a_device_needs_a_display_name_and_a_login(hs: MatrixClient) -> None:
    owner = await hs.register()
    missing = await hs.request("POST", f"{V1}/devices", {}, user=owner)
    assert (missing.status, missing.errcode) == (400, "M_BAD_JSON")
    anonymous = await hs.request("POST", f"{V1}/devices", {"display_name": "x"})
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")


async def test_login_flows_offer_the_token_login(hs: MatrixClient) -> None:
    body = await hs.ok("GET", "login")
    assert {"type": "m.login.token"} in body["flows"]


async def test_device_agent_logs_in_with_its_login_token_exactly_once(hs: MatrixClient) -> None:
    owner = await hs.register()
    created = await create_device(hs, owner)
    device = await device_login(hs, created["login_token"])
    whoami = await hs.ok("GET", "account/whoami", user=device)
    assert whoami["user_id"] == created["device_user_id"]
    again = await token_login(hs, created["login_token"])
    assert (again.status, again.errcode) == (403, "M_FORBIDDEN")
    made_up = await token_login(hs, "lct_not-a-token")
    assert (made_up.status, made_up.errcode) == (403, "M_FORBIDDEN")
    no_token = await hs.request("POST", "login", {"type": "m.login.token"})
    assert (no_token.status, no_token.errcode) == (400, "M_MISSING_PARAM")


async def test_expired_login_token_is_refused(start_app: AppFactory) -> None:
    hs = await start_app(devices={"login_token_ttl_seconds": 1})
    owner = await hs.register()
    created = await create_device(hs, owner)
    assert created["expires_in_ms"] == 1000
    await asyncio.sleep(1.2)
    reply = await token_login(hs, created["login_token"])
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_owner_gets_a_new_login_token_for_their_device_others_do_not(
    hs: MatrixClient,
) -> None:
    owner, stranger = await hs.register(), await hs.register()
    created = await create_device(hs, owner)
    path = device_path(created["device_user_id"], "/login_token")
    refused = await hs.request("POST", path, {}, user=stranger)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    fresh = await hs.ok("POST", path, {}, user=owner)
    check_shape("login_token_response", fresh)
    device = await device_login(hs, fresh["login_token"])
    assert device.user_id == created["device_user_id"]


async def test_a_device_cannot_own_devices(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    reply = await hs.request("POST", f"{V1}/devices", {"display_name": "x"}, user=paired.device)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_nobody_registers_a_user_id_in_a_device_namespace(hs: MatrixClient) -> None:
    alice = await hs.register()
    device = (await create_device(hs, alice))["device_user_id"]
    localpart = alice.user_id[1:].partition(":")[0]
    squatted = [
        f"{localpart}.dev.abcd1234",  # a device alice may get next
        device[1:].partition(":")[0],  # the one she has
        "nobody.dev.x",
    ]
    for username in squatted:
        body = {"username": username, "password": "pw-long", "auth": {"type": "m.login.dummy"}}
        reply = await hs.request("POST", "register", body)
        assert (reply.status, reply.errcode) == (400, "M_EXCLUSIVE"), (username, reply)
        reply = await hs.request("GET", f"register/available?username={quote(username)}")
        assert (reply.status, reply.errcode) == (400, "M_EXCLUSIVE"), (username, reply)
    # Names merely near it are anyone's.
    for username in (f"{localpart}.dev", f"dev.{localpart}", f"{localpart}.devices.x"):
        assert (await hs.register(username)).user_id.startswith(f"@{username}:")
    # The server still makes device accounts there.
    assert (await create_device(hs, alice))["device_user_id"].startswith(f"@{localpart}.dev.")


async def test_a_device_room_cannot_be_made_with_create_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    reply = await hs.request(
        "POST",
        "createRoom",
        {
            "creation_content": {
                "type": "com.linkchat.device",
                "device_user_id": alice.user_id,
                "owner_user_id": alice.user_id,
            }
        },
        user=alice,
    )
    assert reply.status == 400 and reply.errcode == "M_INVALID_ROOM_STATE", reply.body


async def test_a_device_room_cannot_be_encrypted(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    reply = await hs.request(
        "PUT",
        f"rooms/{paired.room_id}/state/m.room.encryption",
        {"algorithm": "m.megolm.v1.aes-sha2"},
        user=paired.owner,
    )
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


# Capabilities


async def test_device_publishes_its_capabilities_as_room_state(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    state = await _state(hs, paired.owner, paired.room_id, CAPABILITIES)
    assert state == DEVICE_CAPABILITIES


async def test_only_the_device_may_publish_capabilities(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    reply = await publish_capabilities(hs, paired.owner, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    stranger = await hs.register()
    reply = await publish_capabilities(hs, stranger, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")


async def test_capabilities_with_an_invalid_json_schema_are_refused(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    bad = {"actions": {"beep": {"args_schema": {"type": "no-such-type"}}}}
    reply = await publish_capabilities(hs, paired.device, paired.room_id, bad)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert "content.actions.beep.args_schema" in reply.body["error"]
    remote = {"actions": {"beep": {"args_schema": {"$ref": "https://example.com/s.json"}}}}
    reply = await publish_capabilities(hs, paired.device, paired.room_id, remote)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    assert "self-contained" in reply.body["error"]
    for loop in ({"$ref": "#"}, {"$ref": "#/$defs/missing"}):
        looping = {"actions": {"beep": {"args_schema": loop}}}
        reply = await publish_capabilities(hs, paired.device, paired.room_id, looping)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), loop
    no_schema = {"actions": {"beep": {"description": "no schema"}}}
    reply = await publish_capabilities(hs, paired.device, paired.room_id, no_schema)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    bad_name: dict[str, Any] = {"actions": {"be ep": {"args_schema": {}}}}
    reply = await publish_capabilities(hs, paired.device, paired.room_id, bad_name)
    assert (reply.status, reply.errcode) == (400, "M_BAD_JSON")
    # The capabilities published first still stand.
    state = await _state(hs, paired.owner, paired.room_id, CAPABILITIES)
    assert state == DEVICE_CAPABILITIES


async def test_capabilities_are_state_with_an_empty_state_key(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    keyed = await hs.request(
        "PUT",
        f"rooms/{paired.room_id}/state/{CAPABILITIES}/other",
        DEVICE_CAPABILITIES,
        user=paired.device,
    )
    assert (keyed.status, keyed.errcode) == (400, "M_BAD_JSON")
    timeline = await hs.request(
        "PUT",
        f"rooms/{paired.room_id}/send/{CAPABILITIES}/t1",
        DEVICE_CAPABILITIES,
        user=paired.device,
    )
    assert (timeline.status, timeline.errcode) == (400, "M_BAD_JSON")


async def test_device_event_types_outside_device_rooms_are_carried_untouched(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    alice = await hs.register()
    room = await hs.create_room(alice)
    assert (await publish_capabilities(hs, alice, room, {"anything": True})).status == 200
    assert (await send_command(hs, alice, room, action="reboot", ttl_ms=100)).status == 200
    # A "result" elsewhere naming a device room's command does not answer it.
    command_id = (await send_command(hs, paired.owner, paired.room_id)).body["event_id"]
    forged = await send_event(hs, alice, room, RESULT, result_content(command_id, "succeeded"))
    assert forged.status == 200
    await asyncio.sleep(0.4)
    [listed] = await commands(hs, paired.owner, paired.device.user_id)
    assert (listed["status"], listed["results"]) == ("pending", [])
    # Nor does anything expire there.
    events = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=10", user=alice)
    assert EXPIRED not in {e["type"] for e in events["chunk"]}


# Grants


async def test_grant_invites_the_user_at_the_command_level_and_revoke_kicks_them(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    friend = await hs.register()
    grants = device_path(paired.device.user_id, "/grants")
    granted = await hs.ok("POST", grants, {"user_id": friend.user_id}, user=paired.owner)
    check_shape("empty", granted)
    levels = await _state(hs, paired.owner, paired.room_id, "m.room.power_levels")
    assert levels["users"][friend.user_id] == 50
    invited = await hs.sync(friend)
    assert paired.room_id in invited["rooms"]["invite"]
    await hs.join(friend, paired.room_id)
    listed = await hs.ok("GET", f"{V1}/devices", user=paired.owner)
    assert listed["devices"][0]["grants"] == [friend.user_id]
    assert (await send_command(hs, friend, paired.room_id)).status == 200

    await hs.ok("DELETE", f"{grants}/{quote(friend.user_id)}", user=paired.owner)
    levels = await _state(hs, paired.owner, paired.room_id, "m.room.power_levels")
    assert friend.user_id not in levels["users"]
    member = await _state(hs, paired.owner, paired.room_id, f"m.room.member/{friend.user_id}")
    assert member["membership"] == "leave"
    reply = await send_command(hs, friend, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    listed = await hs.ok("GET", f"{V1}/devices", user=paired.owner)
    assert listed["devices"][0]["grants"] == []
    again = await hs.request("DELETE", f"{grants}/{quote(friend.user_id)}", user=paired.owner)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")


async def test_only_the_owner_grants_and_revokes(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    friend, stranger = await hs.register(), await hs.register()
    grants = device_path(paired.device.user_id, "/grants")
    await hs.ok("POST", grants, {"user_id": friend.user_id}, user=paired.owner)
    await hs.join(friend, paired.room_id)
    for caller in (friend, stranger, paired.device):
        reply = await hs.request("POST", grants, {"user_id": stranger.user_id}, user=caller)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), caller
        reply = await hs.request("DELETE", f"{grants}/{quote(friend.user_id)}", user=caller)
        assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN"), caller


async def test_grants_name_another_existing_user(hs: MatrixClient) -> None:
    paired = await paired_device(hs)
    grants = device_path(paired.device.user_id, "/grants")
    for target in (paired.owner.user_id, paired.device.user_id, "@_linkchat:localhost"):
        reply = await hs.request("POST", grants, {"user_id": target}, user=paired.owner)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), target
    reply = await hs.request("POST", grants, {"user_id": "@nobody:localhost"}, user=paired.owner)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = await hs.request("POST", grants, {"user_id": "not-a-user"}, user=paired.owner)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    unknown = device_path("@nobody.dev.x:localhost", "/grants")
    reply = await hs.request("POST", unknown, {"user_id": "@a:localhost"}, user=paired.owner)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


# Retirement


async def test_retired_device_loses_its_tokens_its_room_and_its_place_in_the_list(
    hs: MatrixClient,
) -> None:
    paired = await paired_device(hs)
    stranger = await hs.register()
    path = device_path(paired.device.user_id)
    refused = await hs.request("DELETE", path, user=stranger)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")

    await hs.ok("DELETE", path, user=paired.owner)
    whoami = await hs.request("GET", "account/whoami", user=paired.device)
    assert (whoami.status, whoami.errcode) == (401, "M_UNKNOWN_TOKEN")
    member = await _state(
        hs, paired.owner, paired.room_id, f"m.room.member/{paired.device.user_id}"
    )
    assert member["membership"] == "leave"
    listed = await hs.ok("GET", f"{V1}/devices", user=paired.owner)
    assert listed["devices"] == []
    reply = await send_command(hs, paired.owner, paired.room_id)
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
    again = await hs.request("DELETE", path, user=paired.owner)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")
    token = await hs.request(
        "POST", device_path(paired.device.user_id, "/login_token"), {}, user=paired.owner
    )
    assert (token.status, token.errcode) == (404, "M_NOT_FOUND")


async def test_retiring_a_device_kills_its_unused_login_token(hs: MatrixClient) -> None:
    owner = await hs.register()
    created = await create_device(hs, owner)
    await hs.ok("DELETE", device_path(created["device_user_id"]), user=owner)
    reply = await token_login(hs, created["login_token"])
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")
