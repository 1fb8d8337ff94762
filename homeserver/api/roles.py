"""Named roles: GET /_linkchat/v1/rooms/{roomId}/roles, PUT .../roles/{userId}."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import RequestBody, parse_body, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.roles.service import RoleService

ROLES = web.AppKey("roles", RoleService)

routes = web.RouteTableDef()


class RoleBody(RequestBody):
    role: str


# GET /_linkchat/v1/rooms/{room_id}/roles
@routes.get(LINKCHAT + "/rooms/{room_id}/roles")
async def get_roles(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(await request.app[ROLES].roles(caller.user_id, room_id_param(request)))


# PUT /_linkchat/v1/rooms/{room_id}/roles/{user_id}
@routes.put(LINKCHAT + "/rooms/{room_id}/roles/{user_id}")
async def put_role(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, RoleBody)
    event_id = await request.app[ROLES].set_role(
        caller.user_id, room_id_param(request), request.match_info["user_id"], body.role
    )
    return ok({"event_id": event_id})
