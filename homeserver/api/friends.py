"""Friends: requests, accepting, declining, cancelling, listing and removing.

LinkChat's own API (spec/friends.md); the facts live in the account chains and
every rule is the server's (homeserver/friends).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import RequestBody, json_object, parse_body, requester, user_id_param
from homeserver.api.responses import ok
from homeserver.friends.content import MAX_MESSAGE_LENGTH
from homeserver.friends.service import Friend, FriendRequest, FriendService

FRIENDS = web.AppKey("friends", FriendService)

routes = web.RouteTableDef()


class FriendRequestBody(RequestBody):
    user_id: str = Field(min_length=1, max_length=255)
    message: str | None = Field(None, max_length=MAX_MESSAGE_LENGTH)


def friend_json(friend: Friend) -> dict[str, Any]:
    return {"user_id": friend.user_id, "since": friend.since, "room_id": friend.room_id}


def request_json(request: FriendRequest) -> dict[str, Any]:
    return {"user_id": request.user_id, "message": request.message, "ts": request.ts}


# POST /_linkchat/v1/friends/requests
@routes.post(LINKCHAT + "/friends/requests")
async def send_friend_request(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, FriendRequestBody)
    friend = await request.app[FRIENDS].send_request(caller.user_id, body.user_id, body.message)
    if friend is None:
        return ok({"status": "pending"})
    # They had asked first: asking back accepted their request.
    return ok({"status": "friends", **friend_json(friend)})


# GET /_linkchat/v1/friends/requests
@routes.get(LINKCHAT + "/friends/requests")
async def get_friend_requests(request: web.Request) -> web.Response:
    caller = await requester(request)
    incoming, outgoing = await request.app[FRIENDS].requests(caller.user_id)
    return ok(
        {
            "incoming": [request_json(r) for r in incoming],
            "outgoing": [request_json(r) for r in outgoing],
        }
    )


# POST /_linkchat/v1/friends/requests/{user_id}/accept
@routes.post(LINKCHAT + "/friends/requests/{user_id}/accept")
async def accept_friend_request(request: web.Request) -> web.Response:
    caller = await requester(request)
    await json_object(request, empty_ok=True)
    friend = await request.app[FRIENDS].accept(caller.user_id, user_id_param(request))
    return ok(friend_json(friend))


# POST /_linkchat/v1/friends/requests/{user_id}/decline
@routes.post(LINKCHAT + "/friends/requests/{user_id}/decline")
async def decline_friend_request(request: web.Request) -> web.Response:
    caller = await requester(request)
    await json_object(request, empty_ok=True)
    await request.app[FRIENDS].decline(caller.user_id, user_id_param(request))
    return ok()


# DELETE /_linkchat/v1/friends/requests/{user_id}
@routes.delete(LINKCHAT + "/friends/requests/{user_id}")
async def cancel_friend_request(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[FRIENDS].cancel(caller.user_id, user_id_param(request))
    return ok()


# GET /_linkchat/v1/friends
@routes.get(LINKCHAT + "/friends")
async def get_friends(request: web.Request) -> web.Response:
    caller = await requester(request)
    friends = await request.app[FRIENDS].friends(caller.user_id)
    return ok({"friends": [friend_json(f) for f in friends]})


# DELETE /_linkchat/v1/friends/{user_id}
@routes.delete(LINKCHAT + "/friends/{user_id}")
async def remove_friend(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[FRIENDS].remove_friend(caller.user_id, user_id_param(request))
    return ok()
