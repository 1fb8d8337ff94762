"""GET /_linkchat/v1/sync/stream: successive sync responses pushed over one WebSocket.

Protocol (spec/sync_stream.md): the client's first text frame is a JSON object
`{"since"?: token, "filter"?: id or object, "full_state"?: bool}`; the server then
sends each sync response, with its `next_batch`, as soon as it exists. Tokens are
the /sync tokens, so reconnecting with the last `next_batch` loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from homeserver.api.app_keys import METRICS
from homeserver.api.filters import FILTERS
from homeserver.api.paths import LINKCHAT
from homeserver.api.presence import PRESENCE
from homeserver.api.requests import requester
from homeserver.api.sync import SYNC
from homeserver.errors import MatrixError, bad_json, unknown
from homeserver.events.client_format import encode_body
from homeserver.events.client_json import decode_client_json
from homeserver.sync.options import options_from_filter
from homeserver.sync.service import SyncService
from homeserver.sync.tokens import SyncToken

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

# Each long-poll inside the stream; the connection itself lives on, kept alive by pings.
POLL_MS = 30_000
HELLO_TIMEOUT_S = 30
CLOSE_BAD_REQUEST = 4400


async def _hello(ws: web.WebSocketResponse) -> dict[str, object]:
    message = await ws.receive(timeout=HELLO_TIMEOUT_S)
    if message.type != WSMsgType.TEXT:
        raise bad_json("The first frame must be a JSON object (text).")
    # The request bodies' decoder: JSON nested past the recursion limit, or a string
    # PostgreSQL cannot hold, is a client error here too, never a crash mid-socket.
    hello = decode_client_json(message.data, "The first frame")
    if not isinstance(hello, dict):
        raise bad_json("The first frame must be a JSON object.")
    return hello


async def _refuse(ws: web.WebSocketResponse, error: MatrixError, code: int) -> None:
    """The documented refusal: one frame with the Matrix error body, then close."""
    with contextlib.suppress(ConnectionError):  # a client already gone is only closed
        await ws.send_json(error.body())
    await ws.close(code=code, message=error.errcode.encode())


async def _end(ws: web.WebSocketResponse, error: Exception, user_id: str) -> None:
    """A stream whose syncs failed: the error frame, then close, so the client
    reconnects rather than wait on a socket that will never send again."""
    if isinstance(error, ConnectionError):
        await ws.close()  # the client went away while a frame was sent
    elif isinstance(error, MatrixError) and error.status < 500:
        await _refuse(ws, error, 4000 + error.status)
    else:
        log.error("sync stream of %s failed; closing it", user_id, exc_info=error)
        await _refuse(ws, unknown("Internal server error"), WSCloseCode.INTERNAL_ERROR)


# GET /_linkchat/v1/sync/stream
@routes.get(LINKCHAT + "/sync/stream")
async def sync_stream(request: web.Request) -> web.StreamResponse:
    caller = await requester(request)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=65_536)
    if not ws.can_prepare(request).ok:
        raise MatrixError(
            400,
            "M_UNRECOGNIZED",
            "This endpoint is a WebSocket: connect with an Upgrade: websocket request.",
        )
    await ws.prepare(request)
    try:
        hello = await _hello(ws)
        since_raw, filter_raw = hello.get("since"), hello.get("filter")
        if since_raw is not None and not isinstance(since_raw, str):
            raise bad_json("since must be a string.")
        since = SyncToken.parse(since_raw) if since_raw else None
        if isinstance(filter_raw, dict):
            filter_raw = json.dumps(filter_raw)
        if filter_raw is not None and not isinstance(filter_raw, str):
            raise bad_json("filter must be a filter ID or a filter object.")
        options = options_from_filter(
            await request.app[FILTERS].resolve(caller.user_id, filter_raw)
        )
        full_state = hello.get("full_state") is True
    except (MatrixError, TimeoutError) as error:
        matrix = error if isinstance(error, MatrixError) else bad_json("No first frame.")
        await _refuse(ws, matrix, CLOSE_BAD_REQUEST)
        return ws
    except Exception:
        # The socket is upgraded: the middleware's 500 response would reach the
        # client as a garbage frame (and close 1002). Say it in the protocol instead.
        log.exception("sync stream: the first frame could not be handled")
        await _refuse(ws, unknown("Internal server error"), WSCloseCode.INTERNAL_ERROR)
        return ws

    async def push() -> None:
        service = request.app[SYNC]
        try:
            # A client holding a stream is connected, as one long-polling with the
            # default set_presence=online.
            async with request.app[PRESENCE].syncing(caller.user_id, "online"):
                await stream(service)
        except Exception as error:
            # Closing ends the receive loop below, which cleans up.
            await _end(ws, error, caller.user_id)

    async def stream(service: SyncService) -> None:
        nonlocal since, full_state
        while True:
            result = await service.wait_for_changes(
                caller.user_id, caller.device_id, since, POLL_MS, options, full_state
            )
            if result.has_changes or since is None or full_state:
                await ws.send_str(encode_body(result.body).decode())
            since = result.token
            full_state = False
            if service.releasing:
                # Shutting down: the client reconnects (to another worker) from `since`.
                await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"server restarting")
                return

    pushing = asyncio.create_task(push())
    with request.app[METRICS].held.holding("stream"):
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            pushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pushing
            await ws.close()
    return ws
