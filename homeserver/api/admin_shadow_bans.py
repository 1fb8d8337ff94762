"""Admin API: POST/DELETE /_synapse/admin/v1/users/{userId}/shadow_ban, as Synapse serves it.

What a shadow-ban does is rooms/shadow_bans.py's; how it is recorded,
homeserver/moderation/shadow_bans.py's.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin_requests import admin_on_user, admin_reason
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.responses import ok
from homeserver.moderation.shadow_bans import ShadowBanService

SHADOW_BANS = web.AppKey("shadow_bans", ShadowBanService)

routes = web.RouteTableDef()


async def _set(request: web.Request, banned: bool) -> web.Response:
    caller, user_id = await admin_on_user(request)
    reason = await admin_reason(request)
    await request.app[SHADOW_BANS].set_shadow_banned(caller.user_id, user_id, banned, reason)
    return ok()


# POST /_synapse/admin/v1/users/{user_id}/shadow_ban
@routes.post(SYNAPSE_ADMIN + "/v1/users/{user_id}/shadow_ban")
async def shadow_ban(request: web.Request) -> web.Response:
    return await _set(request, True)


# DELETE /_synapse/admin/v1/users/{user_id}/shadow_ban
@routes.delete(SYNAPSE_ADMIN + "/v1/users/{user_id}/shadow_ban")
async def shadow_unban(request: web.Request) -> web.Response:
    return await _set(request, False)
