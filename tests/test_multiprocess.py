"""Several server processes over one PostgreSQL and Redis behave as one server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import ServerProcess

V3 = "/_matrix/client/v3"


@pytest.fixture
def two_processes(
    fresh_dsn: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    # Both processes share the signing key, like replicas of one server.
    first = ServerProcess(tmp_path, fresh_dsn, redis={"url": redis_url})
    first.wait_ready()
    second = ServerProcess(tmp_path, fresh_dsn, redis={"url": redis_url})
    try:
        second.wait_ready()
        yield first, second
    finally:
        assert second.stop() == 0
        assert first.stop() == 0


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as reply:
        data = await reply.json()
        assert reply.status == 200, (method, url, reply.status, data)
        return data


async def _register(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, Any]:
    body = {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}}
    return dict(await _call(http, "POST", f"{base}{V3}/register", body=body))


async def test_long_poll_on_one_process_wakes_within_200ms_of_a_send_on_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice = await _register(http, a.base_url, "alice")
        bob = await _register(http, b.base_url, "bob")
        room = (
            await _call(
                http,
                "POST",
                f"{a.base_url}{V3}/createRoom",
                alice["access_token"],
                {"preset": "public_chat"},
            )
        )["room_id"]
        await _call(http, "POST", f"{b.base_url}{V3}/join/{room}", bob["access_token"], {})
        since = (await _call(http, "GET", f"{b.base_url}{V3}/sync?timeout=0", bob["access_token"]))[
            "next_batch"
        ]
        delays = []
        for n in range(5):
            poll = asyncio.create_task(
                _call(
                    http,
                    "GET",
                    f"{b.base_url}{V3}/sync?timeout=10000&since={since}",
                    bob["access_token"],
                )
            )
            await asyncio.sleep(0.3)  # the poll is held on B
            assert not poll.done()
            sent_at = time.monotonic()
            await _call(
                http,
                "PUT",
                f"{a.base_url}{V3}/rooms/{room}/send/m.room.message/t{n}",
                alice["access_token"],
                {"msgtype": "m.text", "body": f"from A {n}"},
            )
            body = await poll
            delays.append(time.monotonic() - sent_at)
            events = body["rooms"]["join"][room]["timeline"]["events"]
            assert [e["content"]["body"] for e in events] == [f"from A {n}"]
            since = body["next_batch"]
        assert max(delays) < 0.2, delays


async def test_logout_on_one_process_revokes_the_token_on_the_other(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice = await _register(http, a.base_url, "carol")
        token = alice["access_token"]
        await _call(http, "GET", f"{b.base_url}{V3}/account/whoami", token)  # cached on B
        await _call(http, "POST", f"{a.base_url}{V3}/logout", token, {})
        await asyncio.sleep(0.1)
        async with http.get(
            f"{b.base_url}{V3}/account/whoami", headers={"Authorization": f"Bearer {token}"}
        ) as reply:
            assert reply.status == 401
            assert (await reply.json())["errcode"] == "M_UNKNOWN_TOKEN"
