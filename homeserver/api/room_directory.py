"""The public room directory: /publicRooms and /directory/list/room/{roomId}."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from homeserver.api.app_keys import SERVER_NAME
from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param
from homeserver.search.directory import RoomDirectoryService

routes = web.RouteTableDef()
ROOM_DIRECTORY = web.AppKey("room_directory", RoomDirectoryService)


class PublicRoomsFilter(RequestBody):
    generic_search_term: str | None = None
    room_types: list[str | None] | None = None


class PublicRoomsBody(RequestBody):
    limit: int | None = None
    since: str | None = None
    filter: PublicRoomsFilter | None = None
    # No bridged networks here: all networks are this server's own rooms.
    include_all_networks: bool = False
    third_party_instance_id: str | None = None


class VisibilityBody(RequestBody):
    visibility: Literal["public", "private"] = "public"


def _check_server(request: web.Request) -> None:
    """`server` may only name this server: it does not federate."""
    server = request.query.get("server")
    if server and server != request.app[SERVER_NAME]:
        raise invalid_param(f"This server does not federate; it lists no rooms of {server!r}.")


def _limit_param(request: web.Request) -> int | None:
    text = request.query.get("limit")
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise invalid_param("limit must be an integer.") from None


# GET /_matrix/client/v3/publicRooms
@routes.get(V3 + "/publicRooms")
async def get_public_rooms(request: web.Request) -> web.Response:
    # The spec lets anyone read the directory, without an access token.
    _check_server(request)
    body = await request.app[ROOM_DIRECTORY].public_rooms(
        limit=_limit_param(request), since=request.query.get("since") or None
    )
    return ok(body)


# POST /_matrix/client/v3/publicRooms
@routes.post(V3 + "/publicRooms")
async def query_public_rooms(request: web.Request) -> web.Response:
    await requester(request)
    _check_server(request)
    body = await parse_body(request, PublicRoomsBody, empty_ok=True)
    if body.third_party_instance_id is not None:
        # A third-party network's rooms: there are none on this server.
        return ok({"chunk": [], "total_room_count_estimate": 0})
    chosen = body.filter or PublicRoomsFilter()
    page = await request.app[ROOM_DIRECTORY].public_rooms(
        limit=body.limit,
        since=body.since or None,
        search_term=chosen.generic_search_term,
        room_types=chosen.room_types,
    )
    return ok(page)


# GET /_matrix/client/v3/directory/list/room/{room_id}
@routes.get(V3 + "/directory/list/room/{room_id}")
async def get_room_visibility(request: web.Request) -> web.Response:
    visibility = await request.app[ROOM_DIRECTORY].visibility(room_id_param(request))
    return ok({"visibility": visibility})


# PUT /_matrix/client/v3/directory/list/room/{room_id}
@routes.put(V3 + "/directory/list/room/{room_id}")
async def set_room_visibility(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, VisibilityBody, empty_ok=True)
    await request.app[ROOM_DIRECTORY].set_visibility(
        caller.user_id, room_id_param(request), body.visibility
    )
    return ok()
