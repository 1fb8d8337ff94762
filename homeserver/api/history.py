"""Room history: /messages (pagination), /context (the events around one) and /relations
(the events relating to one: edits, reactions, thread replies)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import requester, room_id_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param, missing_param
from homeserver.sync.filters import RoomEventFilter, parse_room_event_filter
from homeserver.sync.history import Direction, HistoryService, Page, Viewer

routes = web.RouteTableDef()
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


async def _viewer(request: web.Request) -> Viewer:
    caller = await requester(request)
    return (caller.user_id, caller.device_id)


def _page(request: web.Request, default: Direction | None = None) -> Page:
    query = request.query
    return Page(
        _direction(request, default),
        query.get("from") or None,
        query.get("to") or None,
        _limit(request),
    )


def _filter(request: web.Request) -> RoomEventFilter:
    return parse_room_event_filter(request.query.get("filter"))


# GET /_matrix/client/v3/rooms/{room_id}/messages
@routes.get(V3 + "/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    viewer, history, room_id = await _viewer(request), request.app[HISTORY], room_id_param(request)
    return ok(await history.messages(viewer, room_id, _page(request), _filter(request)))


# GET /_matrix/client/v3/rooms/{room_id}/context/{event_id}
@routes.get(V3 + "/rooms/{room_id}/context/{event_id}")
async def context(request: web.Request) -> web.Response:
    viewer, history, room_id = await _viewer(request), request.app[HISTORY], room_id_param(request)
    event_id, limit = request.match_info["event_id"], _limit(request)
    return ok(await history.context(viewer, room_id, event_id, limit, _filter(request)))


# GET /_matrix/client/v1/rooms/{room_id}/relations/{event_id}[/{rel_type}[/{event_type}]]
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}")
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}/{rel_type}")
@routes.get(V1 + "/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}")
async def relations(request: web.Request) -> web.Response:
    viewer, history, room_id = await _viewer(request), request.app[HISTORY], room_id_param(request)
    match = request.match_info
    body = await history.relations(
        viewer,
        room_id,
        match["event_id"],
        _page(request, default="b"),
        rel_type=match.get("rel_type"),
        event_type=match.get("event_type"),
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
