"""Faults survived, each with real processes under real traffic (tests/traffic.py):
afterwards every acknowledged message is in the log exactly once, in order, and
delivered to every receiver. Slow: `./dev test --slow`.

PostgreSQL and Redis here are private instances (tests/private_services.py),
restarted at will; the shared ones are never touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.followers import until
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.processes import ServerProcess
from tests.traffic import Traffic

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    try:
        redis.start()
        yield redis
    finally:
        redis.close()


@pytest.fixture
async def database(private_postgres: PrivatePostgres) -> str:
    conn = await asyncpg.connect(private_postgres.dsn)
    try:
        await conn.execute("CREATE DATABASE linkchat")
    finally:
        await conn.close()
    return private_postgres.dsn.rsplit("/", 1)[0] + "/linkchat"


@pytest.fixture
async def traffic_closer() -> AsyncIterator[list[Traffic]]:
    made: list[Traffic] = []
    yield made
    for traffic in made:
        await traffic.close()


def restarts(server: ServerProcess) -> int:
    return server.log_text().count("; restarting")


async def test_postgres_restart_under_load_loses_and_doubles_nothing(
    private_postgres: PrivatePostgres,
    database: str,
    tmp_path: Path,
    traffic_closer: list[Traffic],
) -> None:
    """Requests that meet PostgreSQL away get 503 M_UNKNOWN with Retry-After (never a
    500 or a hang); the pools reconnect on their own; long-polls resume; clients
    retrying with the same transaction IDs lose and double nothing."""
    server = ServerProcess(tmp_path, database, workers=2)
    try:
        server.wait_ready(timeout_s=60)
        traffic = await Traffic.prepared(server.base_url)
        traffic_closer.append(traffic)
        traffic.start()
        await traffic.run_for(3)
        private_postgres.stop("fast")
        await asyncio.sleep(3)
        private_postgres.start()
        await traffic.run_for(5)
        await traffic.stop()
        await traffic.check(database)
        assert traffic.refused > 0, "no request met the outage"
        assert restarts(server) == 0, "a worker died"
    finally:
        assert server.stop() == 0


async def test_redis_outage_keeps_serving_and_no_long_poll_misses_an_event(
    private_redis: PrivateRedis,
    fresh_dsn: str,
    tmp_path: Path,
    traffic_closer: list[Traffic],
) -> None:
    """With Redis gone, the workers keep serving and catch up by stream position:
    every long-poll on any worker gets every message; the bus gauge says degraded."""
    server = ServerProcess(tmp_path, fresh_dsn, workers=2, redis={"url": private_redis.url})
    try:
        server.wait_ready(timeout_s=60)
        traffic = await Traffic.prepared(server.base_url)
        traffic_closer.append(traffic)
        traffic.start()
        await traffic.run_for(2)
        private_redis.stop()
        await traffic.run_for(4)
        metrics = await _metrics(server.metrics_urls[0])
        assert "homeserver_bus_connected 0.0" in metrics
        assert "homeserver_degraded 1.0" in metrics
        private_redis.start()
        await traffic.run_for(4)
        await traffic.stop()
        await traffic.check(fresh_dsn)
        assert "homeserver_bus_connected 1.0" in await _metrics(server.metrics_urls[0])
        assert "bus: Redis connection lost" in server.log_text()
        assert restarts(server) == 0, "a worker died"
    finally:
        assert server.stop() == 0


async def _metrics(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        return await reply.text()


async def test_a_worker_killed_with_sigkill_under_load_loses_nothing(
    fresh_dsn: str, tmp_path: Path, traffic_closer: list[Traffic]
) -> None:
    """kill -9 of one of two workers: its clients reconnect to the other (or to its
    replacement) and retry; the supervisor starts it again."""
    server = ServerProcess(tmp_path, fresh_dsn, workers=2)
    try:
        server.wait_ready(timeout_s=60)
        traffic = await Traffic.prepared(server.base_url)
        traffic_closer.append(traffic)
        traffic.start()
        await traffic.run_for(3)
        killed = server.worker_pids()[1]
        os.kill(killed, signal.SIGKILL)
        await traffic.run_for(4)
        await until(lambda: server.worker_pids()[1] != killed, "worker 1 again", timeout_s=60)
        await traffic.run_for(3)
        await traffic.stop()
        await traffic.check(fresh_dsn)
        assert f"worker 1 (pid {killed}) killed by SIGKILL" in server.log_text()
    finally:
        assert server.stop() == 0


async def test_sigterm_answers_held_long_polls_finishes_writes_and_exits_in_grace(
    fresh_dsn: str, tmp_path: Path, traffic_closer: list[Traffic]
) -> None:
    """SIGTERM to a process: it stops accepting, answers the long-polls it holds
    with what they have, finishes the writes in flight and exits within
    shutdown_grace_seconds; a new process on the same port takes over and the
    clients' retries lose and double nothing."""
    grace = 8
    first = ServerProcess(tmp_path, fresh_dsn, shutdown_grace_seconds=grace)
    second: ServerProcess | None = None
    try:
        first.wait_ready(timeout_s=60)
        traffic = await Traffic.prepared(first.base_url)
        traffic_closer.append(traffic)
        held = [
            asyncio.create_task(
                traffic.request(
                    receiver, "GET", f"/sync?since={receiver.since}&timeout=120000&filter={{}}"
                )
            )
            for receiver in traffic.receivers
        ]
        traffic.start()
        await traffic.run_for(3)
        stopped_at = time.monotonic()
        first.signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, grace + 5) == 0
        assert time.monotonic() - stopped_at < grace
        # Each held poll was answered (its own timeout is two minutes away).
        for poll in held:
            assert await asyncio.wait_for(poll, 10) is not None
        second = ServerProcess(tmp_path, fresh_dsn, port=first.port, shutdown_grace_seconds=grace)
        second.wait_ready(timeout_s=60)
        await traffic.run_for(4)
        await traffic.stop()
        await traffic.check(fresh_dsn)
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0


async def test_rolling_restart_of_two_workers_under_traffic_loses_nothing(
    fresh_dsn: str, tmp_path: Path, traffic_closer: list[Traffic]
) -> None:
    """SIGHUP: the supervisor restarts its workers one after the other while the
    other serves; continuous sends and syncs lose and double nothing."""
    server = ServerProcess(tmp_path, fresh_dsn, workers=2)
    try:
        server.wait_ready(timeout_s=60)
        before = server.worker_pids()
        traffic = await Traffic.prepared(server.base_url)
        traffic_closer.append(traffic)
        traffic.start()
        await traffic.run_for(3)
        server.signal(signal.SIGHUP)
        await until(
            lambda: "rolling restart done" in server.log_text(), "the restart", timeout_s=120
        )
        after = server.worker_pids()
        assert set(after.values()).isdisjoint(before.values()), "a worker was not restarted"
        await traffic.run_for(3)
        await traffic.stop()
        await traffic.check(fresh_dsn)
        assert restarts(server) == 0
    finally:
        assert server.stop() == 0
