"""Receipts and read markers: POST /rooms/{roomId}/receipt/... and /read_markers."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, json_object, parse_body, requester, room_id_param
from homeserver.api.responses import ok
from homeserver.errors import invalid_param
from homeserver.receipts.service import ReceiptService

RECEIPTS = web.AppKey("receipts", ReceiptService)

routes = web.RouteTableDef()


class ReadMarkersBody(RequestBody):
    fully_read: str | None = Field(None, alias="m.fully_read")
    read: str | None = Field(None, alias="m.read")
    read_private: str | None = Field(None, alias="m.read.private")


# POST /_matrix/client/v3/rooms/{room_id}/receipt/{receipt_type}/{event_id}
@routes.post(V3 + "/rooms/{room_id}/receipt/{receipt_type}/{event_id}")
async def post_receipt(request: web.Request) -> web.Response:
    caller = await requester(request)
    room_id = room_id_param(request)
    event_id = request.match_info["event_id"]
    if not event_id.startswith("$"):
        raise invalid_param(f"{event_id!r} is not an event ID.")
    body = await json_object(request, empty_ok=True)
    thread_id = body.get("thread_id")
    if "thread_id" in body and (not isinstance(thread_id, str) or not thread_id):
        raise invalid_param("thread_id must be a non-empty string.")
    await request.app[RECEIPTS].send_receipt(
        caller.user_id, room_id, request.match_info["receipt_type"], event_id, thread_id
    )
    return ok()


# POST /_matrix/client/v3/rooms/{room_id}/read_markers
@routes.post(V3 + "/rooms/{room_id}/read_markers")
async def post_read_markers(request: web.Request) -> web.Response:
    caller = await requester(request)
    room_id = room_id_param(request)
    body = await parse_body(request, ReadMarkersBody, empty_ok=True)
    await request.app[RECEIPTS].set_read_markers(
        caller.user_id, room_id, body.fully_read, body.read, body.read_private
    )
    return ok()
