"""Rooms: createRoom, membership, state, send, redact, events, members."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from homeserver.accounts.service import Requester
from homeserver.api.app_keys import RATE_LIMITER, ROOMS
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, json_object, parse_body, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.errors import bad_json, missing_param
from homeserver.events.model import TxnKey
from homeserver.events.validation import check_event_values
from homeserver.ratelimit.limiter import Action
from homeserver.rooms.service import RoomCreation
from homeserver.rooms.upgrade import RoomUpgrader
from homeserver.sync.tokens import parse_pagination_token

routes = web.RouteTableDef()
UPGRADES = web.AppKey("room_upgrades", RoomUpgrader)


class StateEventBody(RequestBody):
    type: str = Field(min_length=1, max_length=255)
    state_key: str = Field("", max_length=255)
    content: dict[str, Any]


class CreateRoomBody(RequestBody):
    visibility: str = "private"
    room_alias_name: str | None = Field(None, min_length=1, max_length=200)
    name: str | None = None
    topic: str | None = None
    invite: list[str] = []
    room_version: str | None = None
    creation_content: dict[str, Any] = {}
    initial_state: list[StateEventBody] = []
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: dict[str, Any] | None = None


class ReasonBody(RequestBody):
    reason: str | None = None


class TargetBody(RequestBody):
    user_id: str
    reason: str | None = None


# POST /_matrix/client/v3/createRoom
@routes.post(V3 + "/createRoom")
async def create_room(request: web.Request) -> web.Response:
    caller = await requester(request)
    limiter = request.app[RATE_LIMITER]
    await limiter.limit_user(Action.ROOM_CREATION, caller.user_id)
    body = await parse_body(request, CreateRoomBody)
    if body.invite:
        await limiter.limit_user(Action.INVITE, caller.user_id, len(body.invite))
    if body.visibility not in ("public", "private"):
        raise bad_json("visibility must be 'public' or 'private'.")
    for field_name in ("creation_content", "power_level_content_override"):
        check_event_values(getattr(body, field_name), field_name)
    for item in body.initial_state:
        check_event_values(item.content, f"initial_state.{item.type}")
    room_id, alias = await request.app[ROOMS].create_room(
        caller.user_id,
        RoomCreation(
            visibility=body.visibility,
            preset=body.preset,
            room_alias_name=body.room_alias_name,
            name=body.name,
            topic=body.topic,
            invite=body.invite,
            room_version=body.room_version,
            creation_content=body.creation_content,
            initial_state=[(s.type, s.state_key, s.content) for s in body.initial_state],
            is_direct=body.is_direct,
            power_level_content_override=body.power_level_content_override,
        ),
    )
    response: dict[str, Any] = {"room_id": room_id}
    if alias is not None:
        response["room_alias"] = alias
    return ok(response)


async def _join(request: web.Request, caller: Requester, room_id_or_alias: str) -> web.Response:
    await request.app[RATE_LIMITER].limit_user(Action.JOIN, caller.user_id)
    # The whole body goes into the member event (a reason, custom keys), as Synapse.
    body = await json_object(request, empty_ok=True)
    reason = ReasonBody.model_validate(body).reason
    check_event_values(body)
    room_id = await request.app[ROOMS].join(caller.user_id, room_id_or_alias, reason, body)
    return ok({"room_id": room_id})


# POST /_matrix/client/v3/join/{room_id_or_alias}
@routes.post(V3 + "/join/{room_id_or_alias}")
async def join_by_id_or_alias(request: web.Request) -> web.Response:
    caller = await requester(request)
    return await _join(request, caller, request.match_info["room_id_or_alias"])


# POST /_matrix/client/v3/rooms/{room_id}/join
@routes.post(V3 + "/rooms/{room_id}/join")
async def join_room(request: web.Request) -> web.Response:
    caller = await requester(request)
    return await _join(request, caller, room_id_param(request))


# POST /_matrix/client/v3/rooms/{room_id}/invite
@routes.post(V3 + "/rooms/{room_id}/invite")
async def invite(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, TargetBody)
    limiter = request.app[RATE_LIMITER]
    await limiter.limit_user(Action.INVITE, caller.user_id)
    await limiter.limit_user(Action.INVITE_RECIPIENT, caller.user_id, key=body.user_id)
    await request.app[ROOMS].invite(
        caller.user_id, room_id_param(request), body.user_id, body.reason
    )
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/leave
@routes.post(V3 + "/rooms/{room_id}/leave")
async def leave(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, ReasonBody, empty_ok=True)
    await request.app[ROOMS].leave(caller.user_id, room_id_param(request), body.reason)
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/forget
@routes.post(V3 + "/rooms/{room_id}/forget")
async def forget(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[ROOMS].forget(caller.user_id, room_id_param(request))
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/kick
@routes.post(V3 + "/rooms/{room_id}/kick")
async def kick(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, TargetBody)
    await request.app[ROOMS].kick(caller.user_id, room_id_param(request), body.user_id, body.reason)
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/ban
@routes.post(V3 + "/rooms/{room_id}/ban")
async def ban(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, TargetBody)
    await request.app[ROOMS].ban(caller.user_id, room_id_param(request), body.user_id, body.reason)
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/unban
@routes.post(V3 + "/rooms/{room_id}/unban")
async def unban(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, TargetBody)
    await request.app[ROOMS].unban(
        caller.user_id, room_id_param(request), body.user_id, body.reason
    )
    return ok()


# GET /_matrix/client/v3/joined_rooms
@routes.get(V3 + "/joined_rooms")
async def joined_rooms(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"joined_rooms": await request.app[ROOMS].joined_rooms(caller.user_id)})


# GET /_matrix/client/v3/rooms/{room_id}/joined_members
@routes.get(V3 + "/rooms/{room_id}/joined_members")
async def joined_members(request: web.Request) -> web.Response:
    caller = await requester(request)
    joined = await request.app[ROOMS].joined_members(caller.user_id, room_id_param(request))
    return ok({"joined": joined})


# GET /_matrix/client/v3/rooms/{room_id}/members
@routes.get(V3 + "/rooms/{room_id}/members")
async def members(request: web.Request) -> web.Response:
    caller = await requester(request)
    chunk = await request.app[ROOMS].members(
        caller.user_id,
        room_id_param(request),
        request.query.get("membership"),
        request.query.get("not_membership"),
        parse_pagination_token(at) if (at := request.query.get("at")) else None,
    )
    return ok({"chunk": chunk})


# GET /_matrix/client/v3/rooms/{room_id}/state
@routes.get(V3 + "/rooms/{room_id}/state")
async def room_state(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(await request.app[ROOMS].state(caller.user_id, room_id_param(request)))


# GET /_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}
@routes.get(V3 + "/rooms/{room_id}/state/{event_type}")
@routes.get(V3 + "/rooms/{room_id}/state/{event_type}/{state_key:.*}")
async def get_state_event(request: web.Request) -> web.Response:
    caller = await requester(request)
    served = await request.app[ROOMS].state_event(
        caller.user_id,
        room_id_param(request),
        request.match_info["event_type"],
        request.match_info.get("state_key", ""),
    )
    if request.query.get("format") == "event":
        return ok(served)
    return ok(served["content"])


# PUT /_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}
@routes.put(V3 + "/rooms/{room_id}/state/{event_type}")
@routes.put(V3 + "/rooms/{room_id}/state/{event_type}/{state_key:.*}")
async def put_state_event(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[RATE_LIMITER].limit_user(Action.MESSAGE, caller.user_id)
    content = await json_object(request)
    check_event_values(content)
    event_id = await request.app[ROOMS].set_state(
        caller.user_id,
        room_id_param(request),
        request.match_info["event_type"],
        request.match_info.get("state_key", ""),
        content,
    )
    return ok({"event_id": event_id})


# PUT /_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}
@routes.put(V3 + "/rooms/{room_id}/send/{event_type}/{txn_id}")
async def send_event(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[RATE_LIMITER].limit_user(Action.MESSAGE, caller.user_id)
    content = await json_object(request)
    check_event_values(content)
    room_id, event_type = room_id_param(request), request.match_info["event_type"]
    txn = TxnKey.for_path(
        caller.user_id, caller.device_id, request.match_info["txn_id"], "send", room_id, event_type
    )
    event_id = await request.app[ROOMS].send(caller.user_id, room_id, event_type, content, txn)
    return ok({"event_id": event_id})


# PUT /_matrix/client/v3/rooms/{room_id}/redact/{event_id}/{txn_id}
@routes.put(V3 + "/rooms/{room_id}/redact/{event_id}/{txn_id}")
async def redact_event(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[RATE_LIMITER].limit_user(Action.MESSAGE, caller.user_id)
    body = await parse_body(request, ReasonBody, empty_ok=True)
    room_id, target = room_id_param(request), request.match_info["event_id"]
    txn = TxnKey.for_path(
        caller.user_id, caller.device_id, request.match_info["txn_id"], "redact", room_id, target
    )
    event_id = await request.app[ROOMS].redact(caller.user_id, room_id, target, body.reason, txn)
    return ok({"event_id": event_id})


# GET /_matrix/client/v3/rooms/{room_id}/event/{event_id}
@routes.get(V3 + "/rooms/{room_id}/event/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    caller = await requester(request)
    event = await request.app[ROOMS].event(
        caller.user_id, caller.device_id, room_id_param(request), request.match_info["event_id"]
    )
    return ok(event)


# GET /_matrix/client/v3/rooms/{room_id}/aliases
@routes.get(V3 + "/rooms/{room_id}/aliases")
async def room_aliases(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(
        {"aliases": await request.app[ROOMS].room_aliases(caller.user_id, room_id_param(request))}
    )


class UpgradeBody(RequestBody):
    new_version: str | None = None
    additional_creators: list[str] = []


# POST /_matrix/client/v3/rooms/{room_id}/upgrade
@routes.post(V3 + "/rooms/{room_id}/upgrade")
async def upgrade_room(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[RATE_LIMITER].limit_user(Action.ROOM_CREATION, caller.user_id)
    body = await parse_body(request, UpgradeBody)
    if body.new_version is None:
        raise missing_param("new_version is required.")
    replacement = await request.app[UPGRADES].upgrade(
        caller.user_id, room_id_param(request), body.new_version, body.additional_creators
    )
    return ok({"replacement_room": replacement})
