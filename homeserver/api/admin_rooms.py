"""Admin API: rooms, as Synapse serves them: GET /_synapse/admin/v1/rooms (search, order,
paging by offset), GET /v1/rooms/{roomId}, /members and /state, PUT/GET .../block,
POST .../make_room_admin, GET/DELETE .../forward_extremities; DELETE /v2/rooms/{roomId}
and its delete_status.

What is read is the room administration's (homeserver/moderation/room_admin.py).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import StrictBool, StrictStr

from homeserver.api.admin_requests import AdminBody, admin_requester, bool_param, forwards_param
from homeserver.api.app_keys import ROOMS
from homeserver.api.paths import SYNAPSE_ADMIN
from homeserver.api.requests import int_param, parse_body, room_id_param
from homeserver.api.responses import ok
from homeserver.moderation.room_admin import RoomAdministration, RoomQuery
from homeserver.moderation.room_deletion import Deletion, RoomDeletions

ROOM_ADMINISTRATION = web.AppKey("room_administration", RoomAdministration)
ROOM_DELETIONS = web.AppKey("room_deletions", RoomDeletions)

routes = web.RouteTableDef()


class BlockBody(AdminBody):
    block: StrictBool


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


class MakeRoomAdminBody(AdminBody):
    user_id: StrictStr | None = None


# POST /_synapse/admin/v1/rooms/{room_id_or_alias}/make_room_admin
@routes.post(SYNAPSE_ADMIN + "/v1/rooms/{room_id_or_alias}/make_room_admin")
async def make_room_admin(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    body = await parse_body(request, MakeRoomAdminBody, empty_ok=True)
    await request.app[ROOM_ADMINISTRATION].make_room_admin(
        caller.user_id, request.match_info["room_id_or_alias"], body.user_id, body.reason
    )
    return ok()


class DeleteRoomBody(AdminBody):
    new_room_user_id: StrictStr | None = None
    room_name: StrictStr | None = None
    message: StrictStr | None = None
    block: StrictBool = False
    purge: StrictBool = True
    force_purge: StrictBool = False  # accepted, as Synapse; a purge never waits for anyone


# DELETE /_synapse/admin/v2/rooms/{room_id}
@routes.delete(SYNAPSE_ADMIN + "/v2/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    caller = await admin_requester(request)
    room_id = room_id_param(request)
    body = await parse_body(request, DeleteRoomBody)
    delete_id = await request.app[ROOM_DELETIONS].start(
        Deletion(
            room_id,
            caller.user_id,
            new_room_user_id=body.new_room_user_id,
            room_name=body.room_name,
            message=body.message,
            block=body.block,
            purge=body.purge,
            reason=body.reason,
        )
    )
    return ok({"delete_id": delete_id})


# GET /_synapse/admin/v2/rooms/{room_id}/delete_status
@routes.get(SYNAPSE_ADMIN + "/v2/rooms/{room_id}/delete_status")
async def room_delete_statuses(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok({"results": await request.app[ROOM_DELETIONS].statuses(room_id_param(request))})


# GET /_synapse/admin/v2/rooms/delete_status/{delete_id}
@routes.get(SYNAPSE_ADMIN + "/v2/rooms/delete_status/{delete_id}")
async def room_delete_status(request: web.Request) -> web.Response:
    await admin_requester(request)
    return ok(await request.app[ROOM_DELETIONS].status(request.match_info["delete_id"]))


# GET /_synapse/admin/v1/rooms/{room_id_or_alias}/forward_extremities
@routes.get(SYNAPSE_ADMIN + "/v1/rooms/{room_id_or_alias}/forward_extremities")
async def get_forward_extremities(request: web.Request) -> web.Response:
    await admin_requester(request)
    room_id = await request.app[ROOMS].resolve_room(request.match_info["room_id_or_alias"])
    extremities = await request.app[ROOM_ADMINISTRATION].forward_extremities(room_id)
    return ok({"count": len(extremities), "results": extremities})


# DELETE /_synapse/admin/v1/rooms/{room_id_or_alias}/forward_extremities
@routes.delete(SYNAPSE_ADMIN + "/v1/rooms/{room_id_or_alias}/forward_extremities")
async def delete_forward_extremities(request: web.Request) -> web.Response:
    await admin_requester(request)
    room_id = await request.app[ROOMS].resolve_room(request.match_info["room_id_or_alias"])
    await request.app[ROOM_ADMINISTRATION].forward_extremities(room_id)
    # A chain has one head, which is never too many: there is nothing to clear.
    return ok({"deleted": 0})
