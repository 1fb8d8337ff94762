"""Profiles: GET /profile/{userId}, GET/PUT/DELETE /profile/{userId}/{displayname|avatar_url}."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import json_object, requester
from homeserver.api.responses import ok
from homeserver.errors import not_found
from homeserver.profiles.service import FIELDS, ProfileService

PROFILES = web.AppKey("profiles", ProfileService)

routes = web.RouteTableDef()


# GET /_matrix/client/v3/profile/{user_id}
@routes.get(V3 + "/profile/{user_id}")
async def get_profile(request: web.Request) -> web.Response:
    profile = await request.app[PROFILES].profile(request.match_info["user_id"])
    return ok(profile.fields())


# GET /_matrix/client/v3/profile/{user_id}/{key_name}
@routes.get(V3 + "/profile/{user_id}/{key_name}")
async def get_profile_field(request: web.Request) -> web.Response:
    key = request.match_info["key_name"]
    profile = await request.app[PROFILES].profile(request.match_info["user_id"])
    if key not in FIELDS:
        raise not_found(f"No profile field {key!r}.")
    value = profile.fields().get(key)
    return ok({key: value} if value is not None else {})


# PUT /_matrix/client/v3/profile/{user_id}/{key_name}
@routes.put(V3 + "/profile/{user_id}/{key_name}")
async def put_profile_field(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await json_object(request)
    await request.app[PROFILES].set_field(
        caller.user_id, request.match_info["user_id"], request.match_info["key_name"], body
    )
    return ok()


# DELETE /_matrix/client/v3/profile/{user_id}/{key_name}
@routes.delete(V3 + "/profile/{user_id}/{key_name}")
async def delete_profile_field(request: web.Request) -> web.Response:
    caller = await requester(request)
    key = request.match_info["key_name"]
    await request.app[PROFILES].set_field(
        caller.user_id, request.match_info["user_id"], key, {key: ""}
    )
    return ok()
