"""Send-to-device messaging: PUT /sendToDevice/{eventType}/{txnId}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.paths import V3
from homeserver.api.requests import RequestBody, parse_body, requester
from homeserver.api.responses import ok
from homeserver.events.model import TxnKey
from homeserver.to_device.service import ToDeviceService

TO_DEVICE = web.AppKey("to_device", ToDeviceService)

routes = web.RouteTableDef()


class SendToDeviceBody(RequestBody):
    messages: dict[str, dict[str, dict[str, Any]]]


# PUT /_matrix/client/v3/sendToDevice/{event_type}/{txn_id}
@routes.put(V3 + "/sendToDevice/{event_type}/{txn_id}")
async def send_to_device(request: web.Request) -> web.Response:
    caller = await requester(request)
    body = await parse_body(request, SendToDeviceBody)
    event_type = request.match_info["event_type"]
    txn = TxnKey.for_path(
        caller.user_id, caller.device_id, request.match_info["txn_id"], "sendToDevice", event_type
    )
    await request.app[TO_DEVICE].send(txn, event_type, body.messages)
    return ok()
