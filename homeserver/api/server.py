"""Server-level endpoints: versions, capabilities, health, signing keys.

Metrics are not here: they are served on a listener of their own (api/metrics.py).
"""

from __future__ import annotations

from aiohttp import web
from signedjson.sign import sign_json

from homeserver.api.app_keys import POOL, ROOMS, SIGNING_KEYS
from homeserver.api.requests import requester
from homeserver.api.responses import ok
from homeserver.events.room_versions import KNOWN

routes = web.RouteTableDef()

# Spec versions a client may rely on here. SDKs switch behaviour on these, so a
# version is listed only when what it switches on is served:
# - v1.1: the /v3 paths every endpoint here uses (POST /knock is not served; a
#   client only knocks on a room whose join rule is knock), and E2EE (keys,
#   cross-signing, key backup).
# - v1.2, v1.3: /v1/rooms/{id}/relations is served (api/history.py);
#   /v1/rooms/{id}/hierarchy (spaces) is answered 404 M_UNRECOGNIZED, which
#   clients handle.
# - v1.4: threads: bundled aggregations (unsigned.m.relations with m.replace
#   and m.thread, rooms/aggregations.py), /v1/rooms/{id}/threads, thread
#   receipts; private read receipts.
# - v1.5: no new endpoint.
# - v1.6 is left out: it adds /v1/rooms/{id}/timestamp_to_event, which is not
#   served (clients use it to jump to a date).
SPEC_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5"]
UNSTABLE_FEATURES = {"org.matrix.msc2285.stable": True}


# GET /_matrix/client/versions
@routes.get("/_matrix/client/versions")
async def versions(request: web.Request) -> web.Response:
    return ok({"versions": SPEC_VERSIONS, "unstable_features": UNSTABLE_FEATURES})


# GET /_matrix/client/v3/capabilities
@routes.get("/_matrix/client/v3/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    await requester(request)
    return ok(
        {
            "capabilities": {
                "m.change_password": {"enabled": True},
                "m.room_versions": {
                    "default": request.app[ROOMS].default_room_version,
                    "available": {
                        identifier: "stable" if version.stable else "unstable"
                        for identifier, version in KNOWN.items()
                    },
                },
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                # Email addresses: GET /account/3pid, 3pid/add, 3pid/delete.
                "m.3pid_changes": {"enabled": True},
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
        return ok({"status": "unavailable", "database": "unreachable"}, status=503)
    return ok({"status": "ok", "database": "ok"})


# GET /_matrix/key/v2/server
@routes.get("/_matrix/key/v2/server")
async def server_keys(request: web.Request) -> web.Response:
    keys = request.app[SIGNING_KEYS]
    key = await keys.refresh()
    ring = keys.ring
    body = {
        "server_name": key.server_name,
        "verify_keys": {key.key_id: {"key": key.public_key_base64}},
        # Keys that signed events before a rotation, so those events still verify.
        "old_verify_keys": {
            old.key_id: {"key": old.key, "expired_ts": old.expired_ts} for old in ring.old_keys
        },
        "valid_until_ts": 2**53 - 1,
    }
    # The spec requires the response to be signed by the keys it publishes, so a
    # reader can tell it comes from the holder of the key.
    return ok(sign_json(body, key.server_name, key.key))
