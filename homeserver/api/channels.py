"""Broadcast channels: GET /_linkchat/v1/channels/{roomId}.

Channels are created with the ordinary createRoom (`creation_content.type:
com.linkchat.channel`) and joined, read and posted to as rooms.
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from homeserver.api.paths import LINKCHAT
from homeserver.api.requests import requester, room_id_param
from homeserver.api.responses import ok
from homeserver.channels.service import ChannelService

CHANNELS = web.AppKey("channels", ChannelService)

routes = web.RouteTableDef()


# GET /_linkchat/v1/channels/{room_id}
@routes.get(LINKCHAT + "/channels/{room_id}")
async def get_channel(request: web.Request) -> web.Response:
    caller = await requester(request)
    info = await request.app[CHANNELS].info(caller.user_id, room_id_param(request))
    return ok(asdict(info))
