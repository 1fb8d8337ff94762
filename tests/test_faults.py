"""Faults survived, each with real processes under real traffic (tests/traffic.py):
afterwards every acknowledged message is in the log exactly once, in order, and
delivered to every receiver. Slow: `./dev test --slow`.

PostgreSQL and Redis here are private instances (tests/private_services.py),
restarted at will; the shared ones are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

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
