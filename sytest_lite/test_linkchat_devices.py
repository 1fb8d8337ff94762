"""LinkChat: device rooms and device commands (spec/devices.md), over HTTP only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q

DEVICES = "/_linkchat/v1/devices"
COMMAND = "com.linkchat.device.command"
RESULT = "com.linkchat.device.result"
CAPABILITIES = "com.linkchat.device.capabilities"
EXPIRED = "com.linkchat.device.command.expired"
ACTIONS = {
    "actions": {
        "say": {
            "args_schema": {
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": 20}},
                "required": ["text"],
            }
        }
    }
}


async def _device(api: Api, owner: Registered) -> tuple[str, str, str]:
    """(device user ID, room ID, device access token), capabilities published."""
    status, created = await api.request("POST", DEVICES, {"display_name": "kiosk"}, owner[1])
    assert status == 200, created
    status, login = await api.request(
        "POST", "/login", {"type": "m.login.token", "token": created["login_token"]}
    )
    assert status == 200, login
    assert login["user_id"] == created["device_user_id"], login
    token = login["access_token"]
    status, body = await api.put_state(token, created["room_id"], CAPABILITIES, ACTIONS)
    assert status == 200, body
    return created["device_user_id"], created["room_id"], token


def _result(command_id: str, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "m.relates_to": {"rel_type": "com.linkchat.result", "event_id": command_id},
    }


async def _commands(api: Api, token: str, device: str, query: str = "") -> tuple[int, Any]:
    return await api.request("GET", f"{DEVICES}/{q(device)}/commands{query}", token=token)


async def test_login_flows_include_token_login(api: Api) -> None:
    status, body = await api.request("GET", "/login")
    assert status == 200, body
    assert "m.login.token" in [flow["type"] for flow in body["flows"]], body


async def test_device_login_token_works_once(api: Api, alice: Registered) -> None:
    status, created = await api.request("POST", DEVICES, {"display_name": "pc"}, alice.access_token)
    assert status == 200, created
    login = {"type": "m.login.token", "token": created["login_token"]}
    status, body = await api.request("POST", "/login", login)
    assert status == 200, body
    status, body = await api.request("POST", "/login", login)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_owner_lists_devices(api: Api, alice: Registered) -> None:
    device, room, _ = await _device(api, alice)
    status, body = await api.request("GET", DEVICES, token=alice.access_token)
    assert status == 200, body
    [listed] = body["devices"]
    assert (listed["device_user_id"], listed["room_id"]) == (device, room), body


async def test_command_result_round_trip(api: Api, alice: Registered) -> None:
    device, room, device_token = await _device(api, alice)
    status, body = await api.send(
        alice.access_token,
        room,
        COMMAND,
        {"action": "say", "args": {"text": "hi"}, "ttl_ms": 60000},
    )
    assert status == 200, body
    command_id = body["event_id"]
    status, body = await api.send(device_token, room, RESULT, _result(command_id, "succeeded"))
    assert status == 200, body
    status, body = await _commands(api, alice.access_token, device, "?status=done")
    assert status == 200, body
    [listed] = body["commands"]
    assert listed["command_id"] == command_id and listed["status"] == "succeeded", body


async def test_refusals(api: Api, alice: Registered, bob: Registered) -> None:
    device, room, device_token = await _device(api, alice)
    bad_args = {"action": "say", "args": {"text": 5}, "ttl_ms": 60000}
    status, body = await api.send(alice.access_token, room, COMMAND, bad_args)
    assert_error(status, body, 400, "M_BAD_JSON")
    ok = {"action": "say", "args": {"text": "x"}, "ttl_ms": 60000}
    status, body = await api.send(device_token, room, COMMAND, ok)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.send(bob.access_token, room, COMMAND, ok)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.send(device_token, room, RESULT, _result("$unknown", "running"))
    assert_error(status, body, 404, "LINKCHAT_UNKNOWN_COMMAND")
    status, body = await _commands(api, bob.access_token, device)
    assert_error(status, body, 403, "M_FORBIDDEN")
    grants = f"{DEVICES}/{q(device)}/grants"
    status, body = await api.request("POST", grants, {"user_id": bob.user_id}, bob.access_token)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_granted_user_commands_until_revoked(
    api: Api, alice: Registered, bob: Registered
) -> None:
    device, room, _ = await _device(api, alice)
    grants = f"{DEVICES}/{q(device)}/grants"
    status, body = await api.request("POST", grants, {"user_id": bob.user_id}, alice.access_token)
    assert status == 200, body
    await api.join_ok(bob.access_token, room)
    command = {"action": "say", "args": {"text": "from bob"}, "ttl_ms": 60000}
    status, body = await api.send(bob.access_token, room, COMMAND, command)
    assert status == 200, body
    status, body = await api.request(
        "DELETE", f"{grants}/{q(bob.user_id)}", token=alice.access_token
    )
    assert status == 200, body
    status, body = await api.send(bob.access_token, room, COMMAND, command)
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_unanswered_command_expires(api: Api, alice: Registered) -> None:
    device, room, device_token = await _device(api, alice)
    status, body = await api.send(
        alice.access_token, room, COMMAND, {"action": "say", "args": {"text": "x"}, "ttl_ms": 200}
    )
    assert status == 200, body
    command_id = body["event_id"]
    deadline = time.monotonic() + 10
    while True:
        status, body = await _commands(api, alice.access_token, device, "?status=expired")
        assert status == 200, body
        if body["commands"]:
            break
        assert time.monotonic() < deadline, "the command never expired"
        await asyncio.sleep(0.1)
    assert body["commands"][0]["command_id"] == command_id
    status, body = await api.send(device_token, room, RESULT, _result(command_id, "succeeded"))
    assert_error(status, body, 410, "LINKCHAT_COMMAND_EXPIRED")


async def test_retired_device_token_dies(api: Api, alice: Registered) -> None:
    device, _, device_token = await _device(api, alice)
    status, body = await api.request("DELETE", f"{DEVICES}/{q(device)}", token=alice.access_token)
    assert status == 200, body
    status, body = await api.request("GET", "/account/whoami", token=device_token)
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
