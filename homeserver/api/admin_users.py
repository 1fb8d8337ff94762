"""Admin API: user accounts (Synapse's User Admin API, docs/admin_api/user_admin_api.md)."""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictBool

from homeserver.api.admin_requests import SYNAPSE_ADMIN, admin_requester
from homeserver.api.app_keys import SERVER_ADMINS
from homeserver.api.requests import RequestBody, ok, parse_body, user_id_param
from homeserver.errors import not_found

routes = web.RouteTableDef()


class AdminFlagBody(RequestBody):
    admin: StrictBool
    # Ours: why, for the audit trail (Synapse's clients send none).
    reason: str | None = None


# GET /_synapse/admin/v1/users/{user_id}/admin
@routes.get(SYNAPSE_ADMIN + "/v1/users/{user_id}/admin")
async def get_server_admin(request: web.Request) -> web.Response:
    await admin_requester(request)
    user_id = user_id_param(request)
    admins = request.app[SERVER_ADMINS]
    if not await admins.user_exists(user_id):
        raise not_found("User not found")
    return ok({"admin": await admins.is_admin(user_id)})


# PUT /_synapse/admin/v1/users/{user_id}/admin
@routes.put(SYNAPSE_ADMIN + "/v1/users/{user_id}/admin")
async def set_server_admin(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    user_id = user_id_param(request)
    body = await parse_body(request, AdminFlagBody)
    await request.app[SERVER_ADMINS].set_admin(caller.user_id, user_id, body.admin, body.reason)
    return ok({})
