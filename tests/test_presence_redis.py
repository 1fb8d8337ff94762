"""Presence across two real server processes sharing one PostgreSQL, and Redis (or,
without Redis, PostgreSQL's tables and LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import V3, ServerProcess, call, room_of_two, running_pair

NO_PRESENCE = json.dumps({"presence": {"not_types": ["*"]}})


@pytest.fixture(params=["redis", "postgres"])
def two_processes(
    request: pytest.FixtureRequest, fresh_dsn: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    # A short offline timeout, so the test can tell a heartbeat from a timeout.
    config: dict[str, Any] = {"presence": {"offline_timeout_seconds": 1}}
    if request.param == "redis":
        # Its own namespace in a Redis other suites on this machine share.
        config["redis"] = {"url": request.getfixturevalue("redis_url")}
        config["server_name"] = f"pr{secrets.token_hex(4)}.test"
    else:
        config["bus"] = "postgres"
    with running_pair(tmp_path, fresh_dsn, **config) as pair:
        yield pair


async def test_presence_set_on_one_process_is_seen_on_another(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice, bob, _ = await room_of_two(http, a, b)
        bob_token = bob["access_token"]
        first = await call(http, "GET", f"{b.base_url}{V3}/sync?set_presence=offline", bob_token)
        # A long-poll held on B is woken by a change made on A.
        poll = asyncio.create_task(
            call(
                http,
                "GET",
                f"{b.base_url}{V3}/sync?since={first['next_batch']}&timeout=10000"
                "&set_presence=offline",
                bob_token,
            )
        )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await call(
            http,
            "PUT",
            f"{a.base_url}{V3}/presence/{alice['user_id']}/status",
            alice["access_token"],
            {"presence": "unavailable", "status_msg": "on a train"},
        )
        body = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - started < 3
        events = {e["sender"]: e["content"] for e in body["presence"]["events"]}
        assert events[alice["user_id"]]["presence"] == "unavailable"
        assert events[alice["user_id"]]["status_msg"] == "on a train"
        # And B's GET reads the same shared record.
        status = await call(
            http, "GET", f"{b.base_url}{V3}/presence/{alice['user_id']}/status", bob_token
        )
        assert (status["presence"], status["status_msg"]) == ("unavailable", "on a train")


async def test_a_long_poll_on_one_process_keeps_the_user_online_for_all(
    two_processes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_processes
    async with aiohttp.ClientSession() as http:
        alice, bob, _ = await room_of_two(http, a, b)
        bob_token = bob["access_token"]
        first = await call(http, "GET", f"{b.base_url}{V3}/sync", bob_token)
        # Bob holds a 3 s long-poll on B; A's sweep must not time him out (1 s).
        poll = asyncio.create_task(
            call(
                http,
                "GET",
                f"{b.base_url}{V3}/sync?since={first['next_batch']}&timeout=3000"
                f"&filter={NO_PRESENCE}",
                bob_token,
            )
        )
        await asyncio.sleep(2)
        url = f"{a.base_url}{V3}/presence/{bob['user_id']}/status"
        assert (await call(http, "GET", url, alice["access_token"]))["presence"] == "online"
        await poll
        # Once his syncs stop, every process shows him offline.
        deadline = time.monotonic() + 5
        while (await call(http, "GET", url, alice["access_token"]))["presence"] != "offline":
            assert time.monotonic() < deadline, "bob never went offline"
            await asyncio.sleep(0.1)
