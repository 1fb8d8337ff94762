"""Several server processes over one PostgreSQL behave as one server, whichever bus
joins them: Redis, or PostgreSQL's LISTEN/NOTIFY when there is no Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.processes import V3, ServerProcess, call, register, room_of_two, running_pair


@pytest.fixture(params=["redis", "postgres"])
def two_processes(
    request: pytest.FixtureRequest, fresh_dsn: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    if request.param == "redis":
        # A server name of its own: Redis channels are namespaced by it, and other
        # suites on this machine's Redis publish positions of their own logs.
        config: dict[str, object] = {
            "redis": {"url": request.getfixturevalue("redis_url")},
            "server_name": f"mp{secrets.token_hex(4)}.test",
        }
    else:
        config = {"bus": "postgres"}
    with running_pair(tmp_path, fresh_dsn, **config) as pair:
        yield pair


async def test_long_poll_on_one_process_wakes_on_a_send_on_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    """Each long-poll held on B is answered with A's message long before its own
    timeout (60 s) runs out: B learns of A's commit through the bus, not a timer.
    A poll may also return early for something else (presence, say); then the
    client polls again, as a client does."""
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice, bob, room = await room_of_two(http, a, b)
        since = (await call(http, "GET", f"{b.base_url}{V3}/sync?timeout=0", bob["access_token"]))[
            "next_batch"
        ]
        for n in range(5):
            poll = asyncio.create_task(
                call(
                    http,
                    "GET",
                    f"{b.base_url}{V3}/sync?timeout=60000&since={since}",
                    bob["access_token"],
                )
            )
            await asyncio.sleep(0.3)  # the poll is held on B
            sent_at = time.monotonic()
            await call(
                http,
                "PUT",
                f"{a.base_url}{V3}/rooms/{room}/send/m.room.message/t{n}",
                alice["access_token"],
                {"msgtype": "m.text", "body": f"from A {n}"},
            )
            bodies: list[str] = []
            while not bodies:
                body = await poll
                assert time.monotonic() - sent_at < 30, "B's long-poll waited for its timeout"
                joined = body["rooms"]["join"].get(room, {})
                bodies = [
                    e["content"]["body"] for e in joined.get("timeline", {}).get("events", [])
                ]
                since = body["next_batch"]
                if not bodies:
                    poll = asyncio.create_task(
                        call(
                            http,
                            "GET",
                            f"{b.base_url}{V3}/sync?timeout=60000&since={since}",
                            bob["access_token"],
                        )
                    )
            assert bodies == [f"from A {n}"]


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
