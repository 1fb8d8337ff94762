"""Typing notices: PUT /rooms/{roomId}/typing/{userId}."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictBool, StrictInt

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.typing_notices.service import TypingService

TYPING = web.AppKey("typing", TypingService)

routes = web.RouteTableDef()


class TypingBody(RequestBody):
    typing: StrictBool
    timeout: StrictInt | None = Field(None, ge=0)


# PUT /_matrix/client/v3/rooms/{room_id}/typing/{user_id}
@routes.put(V3 + "/rooms/{room_id}/typing/{user_id}")
async def put_typing(request: web.Request) -> web.Response:
    caller = await requester(request)
    room_id = room_id_param(request)
    body = await parse_body(request, TypingBody)
    await request.app[TYPING].set_typing(
        caller.user_id, request.match_info["user_id"], room_id, body.typing, body.timeout
    )
    return ok()
