"""Filters: upload one, download one (the spec's "Filtering")."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import json_object, requester
from homeserver.api.responses import ok
from homeserver.errors import forbidden
from homeserver.sync.filters import FilterService

routes = web.RouteTableDef()
FILTERS = web.AppKey("filters", FilterService)


# POST /_matrix/client/v3/user/{user_id}/filter
@routes.post(V3 + "/user/{user_id}/filter")
async def create_filter(request: web.Request) -> web.Response:
    caller = await requester(request)
    if request.match_info["user_id"] != caller.user_id:
        raise forbidden("You may only create filters for yourself.")
    body = await json_object(request)
    filter_id = await request.app[FILTERS].create(caller.user_id, body)
    return ok({"filter_id": filter_id})


# GET /_matrix/client/v3/user/{user_id}/filter/{filter_id}
@routes.get(V3 + "/user/{user_id}/filter/{filter_id}")
async def get_filter(request: web.Request) -> web.Response:
    caller = await requester(request)
    if request.match_info["user_id"] != caller.user_id:
        raise forbidden("You may only read your own filters.")
    return ok(await request.app[FILTERS].get(caller.user_id, request.match_info["filter_id"]))
