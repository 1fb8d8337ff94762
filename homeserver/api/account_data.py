"""Account data and room tags: /user/{userId}/account_data/{type},
/user/{userId}/rooms/{roomId}/account_data/{type} and /user/{userId}/rooms/{roomId}/tags."""

from __future__ import annotations

from aiohttp import web

from homeserver.account_data.facts import GLOBAL
from homeserver.account_data.service import AccountDataService
from homeserver.api.paths import V3
from homeserver.api.push_rules import PUSH_RULES
from homeserver.api.requests import json_object, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.errors import forbidden

ACCOUNT_DATA = web.AppKey("account_data", AccountDataService)

routes = web.RouteTableDef()
USER = V3 + "/user/{user_id}"
ROOM = USER + "/rooms/{room_id}"
PUSH_RULES_TYPE = "m.push_rules"


async def _owner_and_scope(request: web.Request) -> tuple[str, str]:
    """The caller, who must be the user the path names (nobody reads another's data),
    and the scope: the room the path names, else GLOBAL."""
    caller = await requester(request)
    if request.match_info["user_id"] != caller.user_id:
        raise forbidden("You may only use your own account data.")
    scope = room_id_param(request) if "room_id" in request.match_info else GLOBAL
    return caller.user_id, scope


# GET /_matrix/client/v3/user/{user_id}/account_data/{type}
# GET /_matrix/client/v3/user/{user_id}/rooms/{room_id}/account_data/{type}
@routes.get(USER + "/account_data/{type}")
@routes.get(ROOM + "/account_data/{type}")
async def get_account_data(request: web.Request) -> web.Response:
    user_id, scope = await _owner_and_scope(request)
    data_type = request.match_info["type"]
    if data_type == PUSH_RULES_TYPE and scope == GLOBAL:
        # Push rules have their own API; here they read as Synapse shows them, with
        # today's server defaults (push/ruleset.py).
        return ok({"global": await request.app[PUSH_RULES].ruleset(user_id)})
    return ok(await request.app[ACCOUNT_DATA].get(user_id, scope, data_type))


# PUT /_matrix/client/v3/user/{user_id}/account_data/{type}
# PUT /_matrix/client/v3/user/{user_id}/rooms/{room_id}/account_data/{type}
@routes.put(USER + "/account_data/{type}")
@routes.put(ROOM + "/account_data/{type}")
async def put_account_data(request: web.Request) -> web.Response:
    user_id, scope = await _owner_and_scope(request)
    body = await json_object(request)
    await request.app[ACCOUNT_DATA].put(user_id, scope, request.match_info["type"], body)
    return ok()


# GET /_matrix/client/v3/user/{user_id}/rooms/{room_id}/tags
@routes.get(ROOM + "/tags")
async def get_tags(request: web.Request) -> web.Response:
    user_id, room_id = await _owner_and_scope(request)
    return ok(await request.app[ACCOUNT_DATA].tags(user_id, room_id))


# PUT /_matrix/client/v3/user/{user_id}/rooms/{room_id}/tags/{tag}
@routes.put(ROOM + "/tags/{tag}")
async def put_tag(request: web.Request) -> web.Response:
    user_id, room_id = await _owner_and_scope(request)
    body = await json_object(request)
    await request.app[ACCOUNT_DATA].put_tag(user_id, room_id, request.match_info["tag"], body)
    return ok()


# DELETE /_matrix/client/v3/user/{user_id}/rooms/{room_id}/tags/{tag}
@routes.delete(ROOM + "/tags/{tag}")
async def delete_tag(request: web.Request) -> web.Response:
    user_id, room_id = await _owner_and_scope(request)
    await request.app[ACCOUNT_DATA].delete_tag(user_id, room_id, request.match_info["tag"])
    return ok()
