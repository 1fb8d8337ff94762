"""`run --workers N`: a supervisor and N worker processes sharing one port and one
database behave as one server, and a worker that dies is started again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.followers import until
from tests.processes import V3, ServerProcess, call, register

VERSIONS = "/_matrix/client/versions"


@pytest.fixture
def two_workers(fresh_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`run` with workers: 2 and no Redis (the bus is PostgreSQL's LISTEN/NOTIFY)."""
    server = ServerProcess(tmp_path, fresh_dsn, workers=2)
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.stop() == 0


async def _versions_served(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as reply:
        text = await reply.text()
    pattern = r'homeserver_http_requests_total\{endpoint="' + re.escape(VERSIONS) + r'".*?\} (\S+)'
    return sum(int(float(count)) for count in re.findall(pattern, text))


async def connection_to(server: ServerProcess, index: int) -> aiohttp.ClientSession:
    """A client whose one kept-alive connection the kernel gave to worker `index`."""
    async with aiohttp.ClientSession() as scraper:
        for _ in range(200):
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            before = await _versions_served(scraper, server.metrics_urls[index])
            await call(client, "GET", server.base_url + VERSIONS)
            if await _versions_served(scraper, server.metrics_urls[index]) > before:
                return client
            await client.close()
    raise AssertionError(f"no connection reached worker {index}")


@pytest.fixture
async def clients(two_workers: ServerProcess) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """One client held by each worker."""
    held = [await connection_to(two_workers, index) for index in range(2)]
    yield held
    for client in held:
        await client.close()


async def test_a_send_through_one_worker_wakes_a_long_poll_held_by_the_other(
    two_workers: ServerProcess, clients: list[aiohttp.ClientSession]
) -> None:
    base = two_workers.base_url
    on_first, on_second = clients
    alice = await register(on_first, base, "alice")
    bob = await register(on_second, base, "bob")
    room = (await call(on_first, "POST", f"{base}{V3}/createRoom", alice["access_token"], {}))[
        "room_id"
    ]
    await call(
        on_first, "POST", f"{base}{V3}/rooms/{room}/invite", alice["access_token"],
        {"user_id": bob["user_id"]},
    )  # fmt: skip
    await call(on_second, "POST", f"{base}{V3}/join/{room}", bob["access_token"], {})
    since = (await call(on_second, "GET", f"{base}{V3}/sync?timeout=0", bob["access_token"]))[
        "next_batch"
    ]
    for n in range(3):
        poll = asyncio.create_task(
            call(
                on_second, "GET", f"{base}{V3}/sync?timeout=60000&since={since}",
                bob["access_token"],
            )
        )  # fmt: skip
        await asyncio.sleep(0.3)  # held by the second worker
        sent_at = time.monotonic()
        await call(
            on_first, "PUT", f"{base}{V3}/rooms/{room}/send/m.room.message/t{n}",
            alice["access_token"], {"msgtype": "m.text", "body": f"hello {n}"},
        )  # fmt: skip
        body = await poll
        # A poll may come back early for something else (presence); then poll again.
        while not body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events"):
            body = await call(
                on_second, "GET", f"{base}{V3}/sync?timeout=60000&since={body['next_batch']}",
                bob["access_token"],
            )  # fmt: skip
        assert time.monotonic() - sent_at < 30, "the poll waited for its timeout"
        events = body["rooms"]["join"][room]["timeline"]["events"]
        assert [e["content"]["body"] for e in events] == [f"hello {n}"]
        since = body["next_batch"]


async def test_logout_through_one_worker_ends_the_token_on_the_other(
    two_workers: ServerProcess, clients: list[aiohttp.ClientSession]
) -> None:
    base = two_workers.base_url
    on_first, on_second = clients
    token = (await register(on_first, base, "carol"))["access_token"]
    await call(on_second, "GET", f"{base}{V3}/account/whoami", token)  # cached there
    await call(on_first, "POST", f"{base}{V3}/logout", token, {})

    async def refused() -> bool:
        headers = {"Authorization": f"Bearer {token}"}
        async with on_second.get(f"{base}{V3}/account/whoami", headers=headers) as reply:
            return reply.status == 401

    await until(refused, "the other worker to refuse the token", timeout_s=10)


async def test_a_worker_killed_with_sigkill_is_started_again_and_the_supervisor_says_why(
    two_workers: ServerProcess,
) -> None:
    killed = two_workers.worker_pids()[1]
    os.kill(killed, signal.SIGKILL)
    await until(lambda: two_workers.worker_pids()[1] != killed, "a new worker 1", timeout_s=60)
    assert f"worker 1 (pid {killed}) killed by SIGKILL" in two_workers.log_text()
    two_workers.wait_ready()  # both metrics listeners answer again
    for _ in range(20):  # on fresh connections, spread over both workers
        async with aiohttp.ClientSession() as http:
            await call(http, "GET", two_workers.base_url + VERSIONS)


async def test_sigterm_to_the_supervisor_stops_every_worker(fresh_dsn: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, fresh_dsn, workers=2)
    server.wait_ready()
    workers = server.worker_pids().values()
    server.signal(signal.SIGTERM)
    assert server.wait(timeout_s=30) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    server.stop()


@pytest.mark.slow
async def test_quick_start_runs_two_workers_on_embedded_postgres(tmp_path: Path) -> None:
    """`./dev run --workers 2`: no DSN (the supervisor starts the embedded PostgreSQL
    and hands it to both workers), no Redis."""
    server = ServerProcess(tmp_path, "", workers=2)
    try:
        server.wait_ready(timeout_s=180)
        assert len(server.worker_pids()) == 2
        async with aiohttp.ClientSession() as http:
            alice = await register(http, server.base_url, "alice")
            room = await call(
                http, "POST", f"{server.base_url}{V3}/createRoom", alice["access_token"], {}
            )
            assert room["room_id"].startswith("!")
    finally:
        assert server.stop(timeout_s=60) == 0
