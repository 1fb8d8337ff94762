"""Several server processes over one PostgreSQL and Redis behave as one server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.processes import V3, ServerProcess, call, register, room_of_two, running_pair


@pytest.fixture
def two_processes(
    fresh_dsn: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with running_pair(tmp_path, fresh_dsn, redis={"url": redis_url}) as pair:
        yield pair


async def test_long_poll_on_one_process_wakes_within_200ms_of_a_send_on_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice, bob, room = await room_of_two(http, a, b)
        since = (await call(http, "GET", f"{b.base_url}{V3}/sync?timeout=0", bob["access_token"]))[
            "next_batch"
        ]
        delays = []
        for n in range(5):
            poll = asyncio.create_task(
                call(
                    http,
                    "GET",
                    f"{b.base_url}{V3}/sync?timeout=10000&since={since}",
                    bob["access_token"],
                )
            )
            await asyncio.sleep(0.3)  # the poll is held on B
            assert not poll.done()
            sent_at = time.monotonic()
            await call(
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
        alice = await register(http, a.base_url, "carol")
        token = alice["access_token"]
        await call(http, "GET", f"{b.base_url}{V3}/account/whoami", token)  # cached on B
        await call(http, "POST", f"{a.base_url}{V3}/logout", token, {})
        await asyncio.sleep(0.1)
        async with http.get(
            f"{b.base_url}{V3}/account/whoami", headers={"Authorization": f"Bearer {token}"}
        ) as reply:
            assert reply.status == 401
            assert (await reply.json())["errcode"] == "M_UNKNOWN_TOKEN"
