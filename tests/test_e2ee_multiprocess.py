"""E2EE across two server processes over one PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2ee import Device
from tests.matrix import User
from tests.processes import V3, ServerProcess, call, room_of_two, running_pair


@pytest.fixture
def two_processes(
    fresh_dsn: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    # A server name of its own: Redis pub/sub channels are shared by every database
    # index, and the bus is namespaced by server name, so no other server's changes
    # (another test run's, on a shared machine) reach these two.
    name = f"e2ee-{secrets.token_hex(4)}.localhost"
    with running_pair(tmp_path, fresh_dsn, redis={"url": redis_url}, server_name=name) as pair:
        yield pair


def _user(registered: dict[str, Any]) -> User:
    return User(
        registered["user_id"], registered["access_token"], registered["device_id"], "unused"
    )


async def test_keys_uploaded_through_one_process_are_claimed_and_queried_through_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice_reg, bob_reg, _room = await room_of_two(http, a, b)
        alice = _user(alice_reg)
        device = Device(alice)
        # B reads alice's counts first, so it holds them in memory.
        counts = await call(http, "GET", f"{b.base_url}{V3}/sync?timeout=0", alice.token)
        assert counts["device_one_time_keys_count"] == {"signed_curve25519": 0}
        await call(
            http,
            "POST",
            f"{a.base_url}{V3}/keys/upload",
            alice.token,
            {"device_keys": device.device_keys(), "one_time_keys": device.one_time_keys(2)},
        )

        query = await call(
            http,
            "POST",
            f"{b.base_url}{V3}/keys/query",
            bob_reg["access_token"],
            {"device_keys": {alice.user_id: []}},
        )
        assert (
            query["device_keys"][alice.user_id][alice.device_id]["keys"]
            == (device.device_keys()["keys"])
        )
        want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
        claimed = await call(
            http, "POST", f"{b.base_url}{V3}/keys/claim", bob_reg["access_token"], want
        )
        assert len(claimed["one_time_keys"][alice.user_id][alice.device_id]) == 1

        # The claim on B changed the count that A and B tell alice's device.
        for process in (a, b):
            for _ in range(50):
                synced = await call(
                    http, "GET", f"{process.base_url}{V3}/sync?timeout=0", alice.token
                )
                if synced["device_one_time_keys_count"] == {"signed_curve25519": 1}:
                    break
                await asyncio.sleep(0.1)
            assert synced["device_one_time_keys_count"] == {"signed_curve25519": 1}


async def test_a_device_list_change_through_one_process_wakes_a_long_poll_on_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice_reg, bob_reg, _room = await room_of_two(http, a, b)
        since = (
            await call(http, "GET", f"{b.base_url}{V3}/sync?timeout=0", bob_reg["access_token"])
        )["next_batch"]
        poll = asyncio.create_task(
            call(
                http,
                "GET",
                f"{b.base_url}{V3}/sync?timeout=20000&since={since}",
                bob_reg["access_token"],
            )
        )
        await asyncio.sleep(0.3)
        assert not poll.done()
        alice = _user(alice_reg)
        await call(
            http,
            "POST",
            f"{a.base_url}{V3}/keys/upload",
            alice.token,
            {"device_keys": Device(alice).device_keys()},
        )
        body = await asyncio.wait_for(poll, 15)
        assert body["device_lists"] == {"changed": [alice.user_id], "left": []}
