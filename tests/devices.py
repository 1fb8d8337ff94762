"""What a device owner, a device agent and others do, for the device room tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema

from tests.matrix import MatrixClient, Reply, User

V1 = "/_linkchat/v1"
COMMAND = "com.linkchat.device.command"
RESULT = "com.linkchat.device.result"
CAPABILITIES = "com.linkchat.device.capabilities"
EXPIRED = "com.linkchat.device.command.expired"
SPEC = Path(__file__).resolve().parent.parent / "spec"

OPEN_URL_SCHEMA = {
    "type": "object",
    "properties": {"url": {"type": "string", "pattern": "^https://"}},
    "required": ["url"],
    "additionalProperties": False,
}
DEVICE_CAPABILITIES = {
    "actions": {
        "open_url": {"description": "Open a web page", "args_schema": OPEN_URL_SCHEMA},
        "beep": {"args_schema": {"type": "object"}},
    }
}


@dataclass(frozen=True)
class Paired:
    owner: User
    device: User
    room_id: str


def device_path(device_user_id: str, rest: str = "") -> str:
    return f"{V1}/devices/{quote(device_user_id)}{rest}"


async def create_device(hs: MatrixClient, owner: User, name: str = "laptop") -> dict[str, Any]:
    body = await hs.ok("POST", f"{V1}/devices", {"display_name": name}, user=owner)
    return dict(body)


async def token_login(hs: MatrixClient, login_token: str) -> Reply:
    return await hs.request("POST", "login", {"type": "m.login.token", "token": login_token})


async def device_login(hs: MatrixClient, login_token: str) -> User:
    reply = await token_login(hs, login_token)
    assert reply.status == 200, reply.body
    return User(reply.body["user_id"], reply.body["access_token"], reply.body["device_id"], "")


async def publish_capabilities(
    hs: MatrixClient, user: User, room_id: str, content: dict[str, Any] | None = None
) -> Reply:
    body = DEVICE_CAPABILITIES if content is None else content
    return await hs.request("PUT", f"rooms/{room_id}/state/{CAPABILITIES}", body, user=user)


async def paired_device(hs: MatrixClient, owner: User | None = None) -> Paired:
    """An owner with a logged-in device that published DEVICE_CAPABILITIES."""
    owner = owner or await hs.register()
    created = await create_device(hs, owner)
    device = await device_login(hs, created["login_token"])
    reply = await publish_capabilities(hs, device, created["room_id"])
    assert reply.status == 200, reply.body
    return Paired(owner, device, created["room_id"])


async def send_event(
    hs: MatrixClient, user: User, room_id: str, event_type: str, content: dict[str, Any]
) -> Reply:
    path = f"rooms/{room_id}/send/{event_type}/{secrets.token_hex(8)}"
    return await hs.request("PUT", path, content, user=user)


async def send_command(
    hs: MatrixClient,
    user: User,
    room_id: str,
    action: str = "open_url",
    args: dict[str, Any] | None = None,
    ttl_ms: int = 60_000,
) -> Reply:
    content = {
        "action": action,
        "args": {"url": "https://example.com"} if args is None else args,
        "ttl_ms": ttl_ms,
    }
    return await send_event(hs, user, room_id, COMMAND, content)


async def command(hs: MatrixClient, paired: Paired, **kwargs: Any) -> str:
    reply = await send_command(hs, paired.owner, paired.room_id, **kwargs)
    assert reply.status == 200, reply.body
    return str(reply.body["event_id"])


def result_content(command_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "m.relates_to": {"rel_type": "com.linkchat.result", "event_id": command_id},
        **extra,
    }


async def send_result(
    hs: MatrixClient, user: User, room_id: str, command_id: str, status: str, **extra: Any
) -> Reply:
    return await send_event(hs, user, room_id, RESULT, result_content(command_id, status, **extra))


async def commands(
    hs: MatrixClient, user: User, device_user_id: str, query: str = ""
) -> list[dict[str, Any]]:
    body = await hs.ok("GET", device_path(device_user_id, "/commands" + query), user=user)
    return list(body["commands"])


def timeline(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id)
    return list(room["timeline"]["events"]) if room else []


def check_shape(definition: str, body: Any) -> None:
    """`body` is what spec/devices.schema.json says `definition` is."""
    bundle = json.loads((SPEC / "devices.schema.json").read_text())
    schema = {"$defs": bundle["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema).validate(body)
