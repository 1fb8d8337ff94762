"""Room aliases: PUT/GET/DELETE /directory/room/{alias}."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.app_keys import ROOMS, SERVER_ADMINS, SERVER_NAME
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester
from homeserver.api.responses import ok

routes = web.RouteTableDef()


class AliasBody(RequestBody):
    room_id: str


# GET /_matrix/client/v3/directory/room/{room_alias}
@routes.get(V3 + "/directory/room/{room_alias}")
async def get_alias(request: web.Request) -> web.Response:
    room_id = await request.app[ROOMS].resolve_alias(request.match_info["room_alias"])
    return ok({"room_id": room_id, "servers": [request.app[SERVER_NAME]]})


# PUT /_matrix/client/v3/directory/room/{room_alias}
@routes.put(V3 + "/directory/room/{room_alias}")
async def put_alias(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, AliasBody)
    await request.app[ROOMS].create_alias(
        caller.user_id,
        request.match_info["room_alias"],
        body.room_id,
        await request.app[SERVER_ADMINS].is_admin(caller.user_id),
    )
    return ok()


# DELETE /_matrix/client/v3/directory/room/{room_alias}
@routes.delete(V3 + "/directory/room/{room_alias}")
async def delete_alias(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[ROOMS].delete_alias(
        caller.user_id,
        request.match_info["room_alias"],
        await request.app[SERVER_ADMINS].is_admin(caller.user_id),
    )
    return ok()
