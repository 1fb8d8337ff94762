"""Presence: PUT and GET /presence/{userId}/status."""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictStr

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester
from homeserver.api.responses import ok
from homeserver.presence.rules import Presence
from homeserver.presence.service import PresenceService

PRESENCE = web.AppKey("presence", PresenceService)

routes = web.RouteTableDef()


class StatusBody(RequestBody):
    presence: Presence
    status_msg: StrictStr | None = None


# PUT /_matrix/client/v3/presence/{user_id}/status
@routes.put(V3 + "/presence/{user_id}/status")
async def put_status(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, StatusBody)
    await request.app[PRESENCE].set_status(
        caller.user_id, request.match_info["user_id"], body.presence, body.status_msg
    )
    return ok()


# GET /_matrix/client/v3/presence/{user_id}/status
@routes.get(V3 + "/presence/{user_id}/status")
async def get_status(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok(await request.app[PRESENCE].status(caller.user_id, request.match_info["user_id"]))
