"""The streaming sync WebSocket: pushes syncs as they happen, resumes from a token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import WSMsgType

from homeserver.api.app_keys import METRICS, POOL
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User

STREAM = "/_linkchat/v1/sync/stream"


async def _next_frame(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


def _bodies(frame: dict[str, Any], room: str) -> list[str]:
    events = frame["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def _connect(hs: MatrixClient, user: User, hello: dict[str, Any]) -> Any:
    ws = await hs.http.ws_connect(STREAM, headers={"Authorization": f"Bearer {user.token}"})
    await ws.send_str(json.dumps(hello))
    return ws


@pytest.mark.window_sources
async def test_stream_pushes_initial_sync_then_each_new_message(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await hs.send(alice, room, {"msgtype": "m.text", "body": "first"})
    ws = await _connect(hs, alice, {})
    try:
        initial = await _next_frame(ws)
        assert _bodies(initial, room) == ["first"]
        await hs.send(alice, room, {"msgtype": "m.text", "body": "second"})
        pushed = await _next_frame(ws)
        assert _bodies(pushed, room) == ["second"]
        assert pushed["next_batch"] != initial["next_batch"]
    finally:
        await ws.close()


@pytest.mark.window_sources
async def test_reconnecting_with_the_last_token_loses_nothing(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    ws = await _connect(hs, alice, {})
    last = (await _next_frame(ws))["next_batch"]
    await ws.close()
    for n in range(3):
        await hs.send(alice, room, {"msgtype": "m.text", "body": f"while away {n}"})
    ws = await _connect(hs, alice, {"since": last})
    try:
        caught_up = await _next_frame(ws)
        assert _bodies(caught_up, room) == [f"while away {n}" for n in range(3)]
    finally:
        await ws.close()


async def test_stream_accepts_the_access_token_as_query_parameter(hs: MatrixClient) -> None:
    alice = await hs.register()
    ws = await hs.http.ws_connect(f"{STREAM}?access_token={alice.token}")
    try:
        await ws.send_str("{}")
        assert "next_batch" in await _next_frame(ws)
    finally:
        await ws.close()


async def test_bad_first_frame_gets_a_matrix_error_and_the_socket_closes(hs: MatrixClient) -> None:
    alice = await hs.register()
    ws = await hs.http.ws_connect(STREAM, headers={"Authorization": f"Bearer {alice.token}"})
    await ws.send_str("not json")
    error = await _next_frame(ws)
    assert error["errcode"] == "M_NOT_JSON"
    closing = await asyncio.wait_for(ws.receive(), 5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.close_code == 4400


async def _refusal(hs: MatrixClient, user: User, first_frame: str) -> tuple[dict[str, Any], int]:
    """The error frame the server answers `first_frame` with, and its close code."""
    ws = await hs.http.ws_connect(STREAM, headers={"Authorization": f"Bearer {user.token}"})
    try:
        await ws.send_str(first_frame)
        error = await _next_frame(ws)
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), closing
        assert ws.close_code is not None
        return error, ws.close_code
    finally:
        await ws.close()


async def test_first_frame_with_nul_in_the_filter_gets_the_error_frame_and_4400(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    for hello in [
        {"filter": "\x00"},
        {"filter": "a\x00b"},
        {"filter": {"room": {"rooms": ["!a\x00b:localhost"]}}},
        {"since": "s1\x00"},
    ]:
        error, code = await _refusal(hs, alice, json.dumps(hello))
        assert code == 4400, hello
        assert error["errcode"] == "M_BAD_JSON", hello
        assert isinstance(error["error"], str)
    # The stream still serves a good first frame afterwards.
    ws = await _connect(hs, alice, {})
    try:
        assert "next_batch" in await _next_frame(ws)
    finally:
        await ws.close()


async def test_first_frame_nested_5000_deep_gets_the_error_frame_and_4400(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    for frame in ['{"a":' * 5000 + "1" + "}" * 5000, '{"filter": ' + "[" * 5000 + "]" * 5000 + "}"]:
        error, code = await _refusal(hs, alice, frame)
        assert code == 4400
        assert error["errcode"] == "M_BAD_JSON"
        assert isinstance(error["error"], str)


async def test_unknown_filter_id_in_the_first_frame_is_an_invalid_parameter(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    error, code = await _refusal(hs, alice, json.dumps({"filter": "nosuchfilter"}))
    assert (error["errcode"], code) == ("M_INVALID_PARAM", 4400)


async def test_server_failure_on_the_first_frame_gets_an_error_frame_and_1011(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    hs = await start_app(dsn=fresh_dsn)
    alice = await hs.register()
    # A failure no handler foresees: the filters table is gone from under the server.
    async with hs.app[POOL].acquire() as conn:
        await conn.execute("ALTER TABLE user_filters RENAME TO user_filters_gone")
    error, code = await _refusal(hs, alice, json.dumps({"filter": "somefilter"}))
    assert (error["errcode"], code) == ("M_UNKNOWN", 1011)


async def test_stream_without_a_token_is_refused_before_upgrading(hs: MatrixClient) -> None:
    reply = await hs.request("GET", STREAM)
    assert reply.status == 401
    assert reply.errcode == "M_MISSING_TOKEN"


async def test_a_plain_request_is_told_the_endpoint_is_a_websocket(hs: MatrixClient) -> None:
    user = await hs.register()
    reply = await hs.request("GET", STREAM, user=user)
    assert (reply.status, reply.errcode) == (400, "M_UNRECOGNIZED")
    assert "WebSocket" in reply.body["error"]


@pytest.mark.parametrize("window_source", ["database"], indirect=True)
async def test_a_server_failure_after_the_first_frame_closes_the_socket_with_1011(
    start_app: AppFactory, fresh_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    hs = await start_app(dsn=fresh_dsn)  # every sync built from the database
    alice, bob, room = await hs.room_of_two()
    ws = await _connect(hs, bob, {})
    try:
        assert room in (await _next_frame(ws))["rooms"]["join"]
        # A failure no handler foresees: the unread counts' table is gone from under the
        # server; sending still works, building bob's next sync does not.
        async with hs.app[POOL].acquire() as conn:
            await conn.execute(
                "ALTER TABLE push_notification_backlog RENAME TO push_notification_backlog_gone"
            )
        await hs.send(alice, room, {"msgtype": "m.text", "body": "hello"})
        error = await _next_frame(ws)
        assert error["errcode"] == "M_UNKNOWN"
        closing = await asyncio.wait_for(ws.receive(), 10)
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), closing
        assert ws.close_code == 1011
    finally:
        await ws.close()
    assert any(
        record.name == "homeserver.api.sync_stream" and record.exc_info for record in caplog.records
    )

    async def released() -> bool:
        return hs.app[METRICS].held.count["stream"] == 0

    await hs.eventually(released)
