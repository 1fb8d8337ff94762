"""GET /sync: the long-poll every client holds."""

from __future__ import annotations

import contextlib

from aiohttp import web

from homeserver.api.app_keys import METRICS
from homeserver.api.filters import FILTERS
from homeserver.api.presence import PRESENCE
from homeserver.api.requests import requester
from homeserver.api.responses import json_response
from homeserver.errors import invalid_param
from homeserver.events.client_format import encode_body
from homeserver.sync.options import options_from_filter
from homeserver.sync.service import SyncService
from homeserver.sync.tokens import SyncToken

routes = web.RouteTableDef()
SYNC = web.AppKey("sync", SyncService)
MAX_TIMEOUT_MS = 5 * 60 * 1000
PRESENCE_STATES = ("online", "offline", "unavailable")


def _timeout_ms(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param("timeout must be an integer number of milliseconds.") from None
    return min(max(0, value), MAX_TIMEOUT_MS)


# GET /_matrix/client/v3/sync
@routes.get("/_matrix/client/v3/sync")
async def sync(request: web.Request) -> web.Response:
    caller = await requester(request)
    query = request.query
    since = SyncToken.parse(query["since"]) if query.get("since") else None
    presence = query.get("set_presence", "online")
    if presence not in PRESENCE_STATES:
        raise invalid_param(f"set_presence must be one of {', '.join(PRESENCE_STATES)}.")
    full_state = query.get("full_state", "false") == "true"
    sync_filter = await request.app[FILTERS].resolve(caller.user_id, query.get("filter"))
    timeout_ms = _timeout_ms(query.get("timeout"))
    held: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if timeout_ms:
        held = request.app[METRICS].held.holding("long_poll")
    async with request.app[PRESENCE].syncing(caller.user_id, presence):
        with held:
            result = await request.app[SYNC].wait_for_changes(
                caller.user_id,
                caller.device_id,
                since,
                timeout_ms,
                options_from_filter(sync_filter),
                full_state,
            )
    # Encoded here, not by `ok`: the body holds events already encoded (events/client_format.py).
    return json_response(encode_body(result.body))
