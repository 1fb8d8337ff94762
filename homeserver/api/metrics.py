"""The metrics listener's one endpoint. It is served on a port of its own
(config `metrics`), never on the client port: request counts by endpoint are
for the operator, not for whoever can reach the server."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.app_keys import METRICS

routes = web.RouteTableDef()


# GET /metrics (metrics listener only)
@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8"
    )
