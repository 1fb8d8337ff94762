"""The built-in Push Gateway: POST /_matrix/push/v1/notify (the Push Gateway API)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.requests import json_object
from homeserver.api.responses import ok
from homeserver.errors import MatrixError, bad_json
from homeserver.push.gateway.service import BadNotification, GatewayUnavailable, PushGateway

PUSH_GATEWAY = web.AppKey("push_gateway", PushGateway)

routes = web.RouteTableDef()


# POST /_matrix/push/v1/notify
@routes.post("/_matrix/push/v1/notify")
async def post_notify(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        rejected = await request.app[PUSH_GATEWAY].notify(body)
    except BadNotification as error:
        raise bad_json(str(error)) from None
    except GatewayUnavailable as error:
        raise MatrixError(502, "M_UNKNOWN", str(error)) from None
    return ok({"rejected": rejected})
