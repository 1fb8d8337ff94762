"""Admin API: the server itself."""

from __future__ import annotations

from aiohttp import web

from homeserver import __version__
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.responses import ok

routes = web.RouteTableDef()


# GET /_synapse/admin/v1/server_version
@routes.get(SYNAPSE_ADMIN + "/v1/server_version")
async def server_version(request: web.Request) -> web.Response:
    # Without a token, as Synapse serves it: admin consoles (synapse-admin) ask for it
    # on their login page, before anyone has signed in. It tells what
    # /_matrix/client/versions tells, and nothing of the server's users or rooms.
    return ok({"server_version": f"LinkChat {__version__}"})
