"""Pushers: GET /pushers and POST /pushers/set."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import json_object, requester
from homeserver.api.responses import ok
from homeserver.push.service import PusherService

PUSHERS = web.AppKey("pushers", PusherService)

routes = web.RouteTableDef()


# GET /_matrix/client/v3/pushers
@routes.get(V3 + "/pushers")
async def get_pushers(request: web.Request) -> web.Response:
    caller = await requester(request)
    return ok({"pushers": await request.app[PUSHERS].pushers(caller.user_id)})


# POST /_matrix/client/v3/pushers/set
@routes.post(V3 + "/pushers/set")
async def post_pushers_set(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await json_object(request)
    await request.app[PUSHERS].set_pusher(caller.user_id, caller.token_hash, body)
    return ok()
