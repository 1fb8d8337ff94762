"""Blocks: PUT/DELETE /_linkchat/v1/blocks/{userId}, GET /_linkchat/v1/blocks.

What a block does (ends the relation, ignores the user, refuses their friend
requests and invites) is the service's (homeserver/friends); spec/friends.md.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.friends import FRIENDS
from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import json_object, requester, user_id_param
from homeserver.api.responses import ok

routes = web.RouteTableDef()


# PUT /_linkchat/v1/blocks/{user_id}
@routes.put(LINKCHAT + "/blocks/{user_id}")
async def put_block(request: web.Request) -> web.Response:
    caller = await requester(request)
    await json_object(request, empty_ok=True)
    await request.app[FRIENDS].block(caller.user_id, user_id_param(request))
    return ok()


# DELETE /_linkchat/v1/blocks/{user_id}
@routes.delete(LINKCHAT + "/blocks/{user_id}")
async def delete_block(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[FRIENDS].unblock(caller.user_id, user_id_param(request))
    return ok()


# GET /_linkchat/v1/blocks
@routes.get(LINKCHAT + "/blocks")
async def get_blocks(request: web.Request) -> web.Response:
    caller = await requester(request)
    blocks = await request.app[FRIENDS].blocks(caller.user_id)
    return ok({"blocks": [{"user_id": b.user_id, "ts": b.ts} for b in blocks]})
