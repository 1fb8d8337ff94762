"""kill -9 of the server between committing an event and pushing it loses no push."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp

from tests.processes import V3, ServerProcess, call, register
from tests.push_gateway import RecordingGateway
from tests.test_push_sending import pusher_body


async def _room_with_pusher(
    http: aiohttp.ClientSession, base: str, gateway: RecordingGateway
) -> tuple[str, str, str]:
    """alice's token, a room she shares with bob, and bob's pushkey."""
    alice = await register(http, base, "alice" + secrets.token_hex(3))
    bob = await register(http, base, "bob" + secrets.token_hex(3))
    room = (await call(http, "POST", f"{base}{V3}/createRoom", alice["access_token"], {}))[
        "room_id"
    ]
    await call(
        http,
        "POST",
        f"{base}{V3}/rooms/{room}/invite",
        alice["access_token"],
        {"user_id": bob["user_id"]},
    )
    await call(http, "POST", f"{base}{V3}/join/{room}", bob["access_token"], {})
    body = pusher_body(gateway.url)
    await call(http, "POST", f"{base}{V3}/pushers/set", bob["access_token"], body)
    return alice["access_token"], room, str(body["pushkey"])


async def _send(http: aiohttp.ClientSession, base: str, token: str, room: str, text: str) -> str:
    url = f"{base}{V3}/rooms/{room}/send/m.room.message/{secrets.token_hex(6)}"
    body = {"msgtype": "m.text", "body": text}
    return str((await call(http, "PUT", url, token, body))["event_id"])


async def test_a_push_queued_when_the_server_is_killed_arrives_after_restart(
    tmp_path: Path, fresh_dsn: str
) -> None:
    gateway = RecordingGateway()
    await gateway.start()
    server = ServerProcess(tmp_path, fresh_dsn)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with aiohttp.ClientSession() as http:
            alice, room, pushkey = await _room_with_pusher(http, server.base_url, gateway)
            gateway.down = True
            queued = await _send(http, server.base_url, alice, room, "queued")
            # The follower committed it and the sender tried: the push is in the outbox.
            await gateway.wait_for(lambda: gateway.refused >= 1, what="a try while down")
            # Not yet followed: killed right after the commit of the send.
            unfollowed = await _send(http, server.base_url, alice, room, "just committed")
            await asyncio.to_thread(server.kill)
            gateway.down = False
            server = ServerProcess(tmp_path, fresh_dsn)
            await asyncio.to_thread(server.wait_ready)
            await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 2, within=60)
            got = [n["event_id"] for n in gateway.for_pushkey(pushkey)]
            assert got == [queued, unfollowed]
    finally:
        await asyncio.to_thread(server.stop)
        await gateway.stop()
