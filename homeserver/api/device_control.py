"""Devices: create, list, retire, login tokens, grants and the commands list.

LinkChat's own API (spec/devices.md). Commands, results and capabilities are
room events sent with the Matrix API into the device room; the server's rules
decide them (homeserver/device_control/rules.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import RequestBody, int_param, parse_body, requester
from homeserver.api.responses import ok
from homeserver.device_control.service import CommandPage, Device, DeviceService, LoginToken

DEVICES = web.AppKey("devices", DeviceService)

routes = web.RouteTableDef()
DEFAULT_COMMANDS_PAGE = 100


class CreateDeviceBody(RequestBody):
    display_name: str = Field(min_length=1, max_length=100)


class GrantBody(RequestBody):
    user_id: str = Field(min_length=1, max_length=255)


def _device_json(device: Device) -> dict[str, Any]:
    return {
        "device_user_id": device.device_user_id,
        "room_id": device.room_id,
        "display_name": device.display_name,
        "created_ts": device.created_ts,
        "grants": device.grants,
    }


def _token_json(token: LoginToken) -> dict[str, Any]:
    return {"login_token": token.token, "expires_in_ms": token.expires_in_ms}


def _page_json(page: CommandPage) -> dict[str, Any]:
    commands = []
    for row in page.commands:
        results = []
        for result in page.results.get(row.command_id, []):
            item: dict[str, Any] = {
                "event_id": result.event_id,
                "sender": result.sender,
                "status": result.status,
                "ts": result.ts,
            }
            if result.has_output:
                item["output"] = result.output
            if result.error is not None:
                item["error"] = result.error
            results.append(item)
        commands.append(
            {
                "command_id": row.command_id,
                "sender": row.sender,
                "action": row.action,
                "args": row.args,
                "ttl_ms": row.ttl_ms,
                "sent_ts": row.sent_ts,
                "expires_ts": row.expires_ts,
                "status": row.status,
                "updated_ts": row.updated_ts,
                "results": results,
            }
        )
    body: dict[str, Any] = {"commands": commands}
    if page.next_batch is not None:
        body["next_batch"] = page.next_batch
    return body


# POST /_linkchat/v1/devices
@routes.post(LINKCHAT + "/devices")
async def create_device(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, CreateDeviceBody)
    created = await request.app[DEVICES].create(caller.user_id, body.display_name)
    return ok(
        {
            "device_user_id": created.device_user_id,
            "room_id": created.room_id,
            **_token_json(created.login_token),
        }
    )


# GET /_linkchat/v1/devices
@routes.get(LINKCHAT + "/devices")
async def list_devices(request: web.Request) -> web.Response:
    caller = await requester(request)
    devices = await request.app[DEVICES].devices(caller.user_id)
    return ok({"devices": [_device_json(device) for device in devices]})


# DELETE /_linkchat/v1/devices/{device_user_id}
@routes.delete(LINKCHAT + "/devices/{device_user_id}")
async def retire_device(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[DEVICES].retire(caller.user_id, request.match_info["device_user_id"])
    return ok()


# POST /_linkchat/v1/devices/{device_user_id}/login_token
@routes.post(LINKCHAT + "/devices/{device_user_id}/login_token")
async def new_login_token(request: web.Request) -> web.Response:
    caller = await requester(request)
    token = await request.app[DEVICES].new_login_token(
        caller.user_id, request.match_info["device_user_id"]
    )
    return ok(_token_json(token))


# POST /_linkchat/v1/devices/{device_user_id}/grants
@routes.post(LINKCHAT + "/devices/{device_user_id}/grants")
async def grant(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, GrantBody)
    await request.app[DEVICES].grant(
        caller.user_id, request.match_info["device_user_id"], body.user_id
    )
    return ok()


# DELETE /_linkchat/v1/devices/{device_user_id}/grants/{user_id}
@routes.delete(LINKCHAT + "/devices/{device_user_id}/grants/{user_id}")
async def revoke(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[DEVICES].revoke(
        caller.user_id, request.match_info["device_user_id"], request.match_info["user_id"]
    )
    return ok()


# GET /_linkchat/v1/devices/{device_user_id}/commands
@routes.get(LINKCHAT + "/devices/{device_user_id}/commands")
async def list_commands(request: web.Request) -> web.Response:
    caller = await requester(request)
    page = await request.app[DEVICES].commands(
        caller.user_id,
        request.match_info["device_user_id"],
        request.query.get("status"),
        int_param(request, "from", 0),
        int_param(request, "limit", DEFAULT_COMMANDS_PAGE),
    )
    return ok(_page_json(page))
