"""Admin API: rooms, as Synapse serves them: GET /_synapse/admin/v1/rooms (search, order,
paging by offset), GET /v1/rooms/{roomId}, /members and /state, PUT/GET .../block.

What is read is the room administration's (homeserver/moderation/room_admin.py).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictBool, StrictStr

from homeserver.api.admin_requests import (
    SYNAPSE_ADMIN,
    admin_requester,
    bool_param,
    forwards_param,
)
from homeserver.api.requests import RequestBody, int_param, ok, parse_body, room_id_param
from homeserver.moderation.room_admin import RoomAdministration, RoomQuery

ROOM_ADMINISTRATION = web.AppKey("room_administration", RoomAdministration)

routes = web.RouteTableDef()


class BlockBody(RequestBody):
    block: StrictBool
    # Ours: why, for the audit trail (Synapse's clients send none).
    reason: StrictStr | None = None


DEFAULT_LIMIT = 100
# A longer page is cut to this; `next_batch` goes on from where it ends.
MAX_LIMIT = 1000


# GET /_synapse/admin/v1/rooms
@routes.get(SYNAPSE_ADMIN + "/v1/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    await admin_requester(request)
    offset = int_param(request, "from", 0)
    limit = min(int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    query = RoomQuery(
        search_term=request.query.get("search_term"),
        public_rooms=bool_param(request, "public_rooms", None),
        empty_rooms=bool_param(request, "empty_rooms", None),
        order_by=request.query.get("order_by", "name"),
        forwards=forwards_param(request, "f"),
    )
    rooms, total = await request.app[ROOM_ADMINISTRATION].rooms(query, offset, limit)
    body: dict[str, object] = {"rooms": rooms, "offset": offset, "total_rooms": total}
    if offset + limit < total:
        body["next_batch"] = offset + limit
    if offset > 0:
        body["prev_batch"] = max(offset - limit, 0)
    return ok(body)


# GET /_synapse/admin/v1/rooms/{room_id}
@routes.get(SYNAPSE_ADMIN + "/v1/rooms/{room_id}")
async def get_room(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok(await request.app[ROOM_ADMINISTRATION].room(room_id_param(request)))


# GET /_synapse/admin/v1/rooms/{room_id}/members
@routes.get(SYNAPSE_ADMIN + "/v1/rooms/{room_id}/members")
async def get_room_members(request: web.Request) -> web.Response:
    await admin_requester(request)
    members = await request.app[ROOM_ADMINISTRATION].members(room_id_param(request))
    return ok({"members": members, "total": len(members)})


# GET /_synapse/admin/v1/rooms/{room_id}/state
@routes.get(SYNAPSE_ADMIN + "/v1/rooms/{room_id}/state")
async def get_room_state(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    state = await request.app[ROOM_ADMINISTRATION].state(
        (caller.user_id, caller.device_id), room_id_param(request), request.query.get("type")
    )
    return ok({"state": state})


# GET /_synapse/admin/v1/rooms/{room_id}/block
@routes.get(SYNAPSE_ADMIN + "/v1/rooms/{room_id}/block")
async def get_room_block(request: web.Request) -> web.Response:
    await admin_requester(request)
    blocked_by = await request.app[ROOM_ADMINISTRATION].blocked_by(room_id_param(request))
    if blocked_by is None:
        return ok({"block": False})
    return ok({"block": True, "user_id": blocked_by})


# PUT /_synapse/admin/v1/rooms/{room_id}/block
@routes.put(SYNAPSE_ADMIN + "/v1/rooms/{room_id}/block")
async def put_room_block(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    room_id = room_id_param(request)
    body = await parse_body(request, BlockBody)
    await request.app[ROOM_ADMINISTRATION].set_blocked(
        caller.user_id, room_id, body.block, body.reason
    )
    return ok({"block": body.block})
