"""Admin API: media (Synapse's docs/admin_api/media_admin_api.md)."""

from __future__ import annotations

from aiohttp import web

from homeserver.admin.media import MediaAdmin
from homeserver.api.admin_requests import admin_reason, admin_requester
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.requests import media_path
from homeserver.api.responses import ok

MEDIA_ADMIN = web.AppKey("media_admin", MediaAdmin)

routes = web.RouteTableDef()


async def _quarantine(request: web.Request, quarantined: bool) -> web.Response:
    caller = await admin_requester(request)
    server_name, media_id = media_path(request)
    reason = await admin_reason(request)
    await request.app[MEDIA_ADMIN].quarantine(
        caller.user_id, server_name, media_id, quarantined, reason
    )
    return ok({})


# POST /_synapse/admin/v1/media/quarantine/{server_name}/{media_id}
@routes.post(SYNAPSE_ADMIN + "/v1/media/quarantine/{server_name}/{media_id}")
async def quarantine_media(request: web.Request) -> web.Response:
    return await _quarantine(request, True)


# POST /_synapse/admin/v1/media/unquarantine/{server_name}/{media_id}
@routes.post(SYNAPSE_ADMIN + "/v1/media/unquarantine/{server_name}/{media_id}")
async def unquarantine_media(request: web.Request) -> web.Response:
    return await _quarantine(request, False)


# DELETE /_synapse/admin/v1/media/{server_name}/{media_id}
@routes.delete(SYNAPSE_ADMIN + "/v1/media/{server_name}/{media_id}")
async def delete_media(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    server_name, media_id = media_path(request)
    reason = await admin_reason(request)
    await request.app[MEDIA_ADMIN].delete(caller.user_id, server_name, media_id, reason)
    return ok({"deleted_media": [media_id], "total": 1})
