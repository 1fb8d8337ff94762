"""Server-level endpoints: versions, capabilities, health, metrics, signing keys."""

from __future__ import annotations

from aiohttp import web
from signedjson.sign import sign_json

from homeserver.api.keys import METRICS, POOL, SERVER_KEY
from homeserver.api.requests import ok, requester
from homeserver.rooms.auth import SUPPORTED_ROOM_VERSIONS
from homeserver.rooms.service import DEFAULT_ROOM_VERSION

routes = web.RouteTableDef()

# Spec versions whose endpoints this server really serves.
SPEC_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6"]


# GET /_matrix/client/versions
@routes.get("/_matrix/client/versions")
async def versions(request: web.Request) -> web.Response:
    return ok({"versions": SPEC_VERSIONS, "unstable_features": {}})


# GET /_matrix/client/v3/capabilities
@routes.get("/_matrix/client/v3/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    await requester(request)
    return ok(
        {
            "capabilities": {
                "m.change_password": {"enabled": True},
                "m.room_versions": {
                    "default": DEFAULT_ROOM_VERSION,
                    "available": {version: "stable" for version in SUPPORTED_ROOM_VERSIONS},
                },
                "m.set_displayname": {"enabled": False},
                "m.set_avatar_url": {"enabled": False},
                "m.3pid_changes": {"enabled": False},
            }
        }
    )


# GET /health
@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    try:
        async with request.app[POOL].acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")
    except Exception:
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return ok({"status": "ok", "database": "ok"})


# GET /metrics
@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8"
    )


# GET /_matrix/key/v2/server
@routes.get("/_matrix/key/v2/server")
async def server_keys(request: web.Request) -> web.Response:
    key = request.app[SERVER_KEY]
    body = {
        "server_name": key.server_name,
        "verify_keys": {key.key_id: {"key": key.public_key_base64}},
        "old_verify_keys": {},
        "valid_until_ts": 2**53 - 1,
    }
    # The spec requires the response to be signed by the keys it publishes, so a
    # reader can tell it comes from the holder of the key.
    return ok(sign_json(body, key.server_name, key.key))
