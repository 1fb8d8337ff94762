"""Fixtures: a real PostgreSQL (fresh database per run), Redis, and the app over HTTP.

PostgreSQL is found at HOMESERVER_TEST_DSN, else at 127.0.0.1:5432, else an
embedded one (pgserver) is started, so the suite passes on a bare machine.
With CI set, a missing Redis fails the run instead of skipping its tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from homeserver.api.sync import SYNC
from homeserver.app import create_app
from homeserver.config import Config, load_config
from tests.matrix import MatrixClient

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_reachable(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def postgres_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN with the right to create databases."""
    configured = os.environ.get("HOMESERVER_TEST_DSN")
    if configured:
        yield configured
        return
    if _server_reachable(LOCAL_DSN):
        yield LOCAL_DSN
        return
    import pgserver

    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def create_database(postgres_admin_dsn: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases; drops them all at the end of the run."""
    made: list[str] = []

    def make() -> str:
        name = "hs_test_" + secrets.token_hex(6)

        async def create() -> None:
            conn = await asyncpg.connect(postgres_admin_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        made.append(name)
        return _with_database(postgres_admin_dsn, name)

    yield make

    async def drop_all() -> None:
        # Together, not one by one: each DROP DATABASE waits for a checkpoint (seconds
        # on a busy machine), and drops in flight at once share one.
        slots = asyncio.Semaphore(16)

        async def drop(name: str) -> None:
            async with slots:
                conn = await asyncpg.connect(postgres_admin_dsn)
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await conn.close()

        await asyncio.gather(*(drop(name) for name in made))

    asyncio.run(drop_all())


@pytest.fixture(scope="session")
def run_dsn(create_database: Callable[[], str]) -> str:
    """This run's own database, shared by the tests that need no empty log."""
    return create_database()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("HOMESERVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {url}, and CI is set")
        pytest.skip(f"Redis is not reachable at {url}")
    return url


def make_config(data_dir: Path, **overrides: Any) -> Config:
    """The defaults, in `data_dir`, with rate limits off unless `rate_limits` turns them on:
    the suite registers and sends far faster than any person."""
    config = load_config(None, {})
    config = config.model_copy(
        update={
            "rate_limits": config.rate_limits.model_copy(update={"enabled": False}),
            # Thousands of accounts a run: scrypt at the lowest cost allowed (Synapse's
            # tests do the same with bcrypt_rounds). tests/test_accounts.py covers the default.
            "registration": config.registration.model_copy(update={"password_hash_cost": 8}),
        }
    )
    updates: dict[str, Any] = {"data_dir": data_dir, "logging": config.logging}
    for key, value in overrides.items():
        section = getattr(config, key)
        updates[key] = section.model_copy(update=value) if isinstance(value, dict) else value
    return config.model_copy(update=updates)


@pytest.fixture
def config(data_dir: Path) -> Config:
    return make_config(data_dir)


AppFactory = Callable[..., Awaitable[MatrixClient]]


WINDOW_SOURCES = ("memory", "database")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="run only the tests marked slow (fault tests with private PostgreSQL and Redis)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` run only with --slow (`./dev test --slow`, a CI step of its
    own), and with it only they do."""
    if config.getoption("--slow"):
        slow = [item for item in items if item.get_closest_marker("slow") is not None]
        config.hook.pytest_deselected(items=[item for item in items if item not in slow])
        items[:] = slow
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long fault or start-up test, run only by --slow (conftest.py)"
    )
    config.addinivalue_line(
        "markers",
        "window_sources: run the test against both window sources of /sync (conftest.py)",
    )
    config.addinivalue_line(
        "markers",
        "syncs_from_database: every sync the test makes is one only the database answers"
        " (initial syncs, the user's own changes), so it runs once",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `window_sources` (or in a module so marked) runs twice, once per
    window source a sync is built from (sync/window.py), so the two cannot drift apart:
    "memory" (as served: the in-memory tail answers the long-polls it can, and the test
    fails unless it answered one) and "database" (every sync built from PostgreSQL)."""
    if (
        metafunc.definition.get_closest_marker("window_sources") is not None
        and metafunc.definition.get_closest_marker("syncs_from_database") is None
        and "window_source" in metafunc.fixturenames
    ):
        metafunc.parametrize("window_source", WINDOW_SOURCES, indirect=True)


@pytest.fixture
def window_source(request: pytest.FixtureRequest) -> str | None:
    """The window source the servers of this test build syncs from (None: as served)."""
    return getattr(request, "param", None)


@pytest.fixture
async def start_app(
    run_dsn: str, data_dir: Path, window_source: str | None
) -> AsyncIterator[AppFactory]:
    """Starts a homeserver app on a real port; `dsn` and config overrides may be given."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(dsn: str | None = None, **overrides: Any) -> MatrixClient:
        app = create_app(
            make_config(data_dir, **overrides),
            dsn or run_dsn,
            sync_from_memory=window_source != "database",
        )
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(app, host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return MatrixClient(client)

    yield start
    answered = Counter[str]()
    for client in clients:
        answered.update(client.app[SYNC].answered)
        await client.close()
    if window_source == "memory":
        assert answered["memory"] > 0, "no sync was answered from memory"
    if window_source == "database":
        assert answered["memory"] == 0


@pytest.fixture
async def hs(start_app: AppFactory) -> MatrixClient:
    """The homeserver on this run's database."""
    return await start_app()


@pytest.fixture
async def fresh_dsn(create_database: Callable[[], str]) -> str:
    """An empty database of its own, for a test that needs the log to itself."""
    return await asyncio.to_thread(create_database)
