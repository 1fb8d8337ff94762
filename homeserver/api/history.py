"""Room history: /messages (pagination), /context (the events around one) and /relations
(the events relating to one: edits, reactions, thread replies)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.requests import ok, requester, room_id_param
from homeserver.errors import invalid_param, missing_param
from homeserver.sync.filters import parse_room_event_filter
from homeserver.sync.history import Direction, HistoryService

routes = web.RouteTableDef()
V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
HISTORY = web.AppKey("history", HistoryService)
DEFAULT_LIMIT = 10


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise invalid_param("limit must be an integer.") from None
    if limit < 0:
        raise invalid_param("limit must not be negative.")
    return limit


def _direction(request: web.Request, default: Direction | None = None) -> Direction:
    direction = request.query.get("dir", default)
    if direction is None:
        raise missing_param("dir is required ('b' or 'f').")
    if direction not in ("b", "f"):
        raise invalid_param("dir must be 'b' or 'f'.")
    return "b" if direction == "b" else "f"


# GET /_matrix/client/v3/rooms/{room_id}/messages
@routes.get(V3 + "/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    caller = await requester(request)
    direction = _direction(request)
    body = await request.app[HISTORY].messages(
        caller.user_id,
        caller.device_id,
        room_id_param(request),
        direction=direction,
        from_token=request.query.get("from") or None,
        to_token=request.query.get("to") or None,
        limit=_limit(request),
        event_filter=parse_room_event_filter(request.query.get("filter")),
    )
    return ok(body)


# GET /_matrix/client/v3/rooms/{room_id}/context/{event_id}
@routes.get(V3 + "/rooms/{room_id}/context/{event_id}")
async def context(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await request.app[HISTORY].context(
        caller.user_id,
        caller.device_id,
        room_id_param(request),
        request.match_info["event_id"],
        limit=_limit(request),
        event_filter=parse_room_event_filter(request.query.get("filter")),
    )
    return ok(body)


# GET /_matrix/client/v1/rooms/{room_id}/relations/{event_id}[/{rel_type}[/{event_type}]]
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}")
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}/{rel_type}")
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}")
async def relations(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await request.app[HISTORY].relations(
        caller.user_id,
        caller.device_id,
        room_id_param(request),
        request.match_info["event_id"],
        rel_type=request.match_info.get("rel_type"),
        event_type=request.match_info.get("event_type"),
        direction=_direction(request, default="b"),
        from_token=request.query.get("from") or None,
        to_token=request.query.get("to") or None,
        limit=_limit(request),
    )
    return ok(body)


# GET /_matrix/client/v1/rooms/{room_id}/threads
@routes.get(V1 + "/rooms/{room_id}/threads")
async def threads(request: web.Request) -> web.Response:
    caller = await requester(request)
    include = request.query.get("include", "all")
    if include not in ("all", "participated"):
        raise invalid_param("include must be all or participated.")
    body = await request.app[HISTORY].threads(
        caller.user_id,
        caller.device_id,
        room_id_param(request),
        participated=include == "participated",
        from_token=request.query.get("from") or None,
        limit=_limit(request),
    )
    return ok(body)
