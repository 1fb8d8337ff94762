"""The v1-era endpoints (deprecated in the spec, still called by older clients and bots):
GET /events, GET /initialSync and GET /rooms/{roomId}/initialSync, on the sync builder
(sync/legacy.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.presence import PRESENCE
from homeserver.api.requests import requester
from homeserver.api.responses import json_response
from homeserver.errors import invalid_param
from homeserver.events.client_format import encode_body
from homeserver.events.model import JsonDict
from homeserver.sync.filters import MAX_LIMIT
from homeserver.sync.legacy import DEFAULT_LIMIT, LegacySync
from homeserver.sync.tokens import SyncToken

routes = web.RouteTableDef()
LEGACY_SYNC = web.AppKey("legacy_sync", LegacySync)
# As Synapse's EventStreamRestServlet when no timeout is given.
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 5 * 60 * 1000


def _integer(request: web.Request, name: str, default: int, upper: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"{name} must be an integer.") from None
    return min(max(0, value), upper)


def _json(body: JsonDict) -> web.Response:
    return json_response(encode_body(body))


# GET /_matrix/client/v3/events
@routes.get(V3 + "/events")
async def get_events(request: web.Request) -> web.Response:
    caller = await requester(request)
    query = request.query
    since = SyncToken.parse(query["from"]) if query.get("from") else None
    timeout = _integer(request, "timeout", DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS)
    async with request.app[PRESENCE].syncing(caller.user_id, "online"):
        body = await request.app[LEGACY_SYNC].events(
            caller.user_id, caller.device_id, since, timeout, query.get("room_id") or None
        )
    return _json(body)


# GET /_matrix/client/v3/initialSync
@routes.get(V3 + "/initialSync")
async def initial_sync(request: web.Request) -> web.Response:
    caller = await requester(request)
    limit = _integer(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    archived = request.query.get("archived", "false") == "true"
    body = await request.app[LEGACY_SYNC].initial_sync(
        caller.user_id, caller.device_id, limit, archived
    )
    return _json(body)


# GET /_matrix/client/v3/rooms/{roomId}/initialSync
@routes.get(V3 + "/rooms/{room_id}/initialSync")
async def room_initial_sync(request: web.Request) -> web.Response:
    caller = await requester(request)
    limit = _integer(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    body = await request.app[LEGACY_SYNC].room_initial_sync(
        caller.user_id, caller.device_id, request.match_info["room_id"], limit
    )
    return _json(body)
