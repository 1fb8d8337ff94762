"""Mutes: PUT/DELETE /_linkchat/v1/rooms/{roomId}/mutes/{userId}, GET .../mutes.

What a mute does (the power levels, the expiry) is the mute service's
(homeserver/moderation/mutes.py); spec/moderation.md.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import RequestBody, parse_body, requester, room_id_param, user_id_param
from homeserver.api.responses import ok
from homeserver.events.content.reports import MAX_REASON_LENGTH
from homeserver.moderation.mutes import MuteService

MUTES = web.AppKey("mutes", MuteService)

routes = web.RouteTableDef()


class MuteBody(RequestBody):
    duration_ms: StrictInt | None = None
    reason: StrictStr | None = Field(None, max_length=MAX_REASON_LENGTH)


# PUT /_linkchat/v1/rooms/{room_id}/mutes/{user_id}
@routes.put(LINKCHAT + "/rooms/{room_id}/mutes/{user_id}")
async def put_mute(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, MuteBody, empty_ok=True)
    mute = await request.app[MUTES].mute(
        caller.user_id,
        room_id_param(request),
        user_id_param(request),
        body.duration_ms,
        body.reason,
    )
    return ok(mute.as_json())


# DELETE /_linkchat/v1/rooms/{room_id}/mutes/{user_id}
@routes.delete(LINKCHAT + "/rooms/{room_id}/mutes/{user_id}")
async def delete_mute(request: web.Request) -> web.Response:
    caller = await requester(request)
    await request.app[MUTES].unmute(caller.user_id, room_id_param(request), user_id_param(request))
    return ok()


# GET /_linkchat/v1/rooms/{room_id}/mutes
@routes.get(LINKCHAT + "/rooms/{room_id}/mutes")
async def get_mutes(request: web.Request) -> web.Response:
    caller = await requester(request)
    mutes = await request.app[MUTES].mutes(caller.user_id, room_id_param(request))
    return ok({"mutes": [mute.as_json() for mute in mutes]})
