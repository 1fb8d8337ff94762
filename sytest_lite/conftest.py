"""Fixtures: one server per session (started here unless SYTEST_LITE_BASE_URL
is set), a fresh HTTP client per test, and freshly registered users."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sytest_lite.client import Api, Registered
from sytest_lite.mailbox import Mailbox
from sytest_lite.server import ServerProcess, free_port, log_tail

SERVER_LOG_KEY = pytest.StashKey[Path]()
MAILBOX_KEY = pytest.StashKey[Mailbox]()


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    external = os.environ.get("SYTEST_LITE_BASE_URL")
    if external:
        yield external.rstrip("/")
        return
    # Not pytest's tmp_path: concurrent pytest runs rotate those away, and the
    # log is the only explanation of a failure. Kept when anything failed.
    work_dir = Path(tempfile.mkdtemp(prefix="sytest_lite_"))
    # The server sends its emails to a mailbox of the suite's own (test_email.py).
    mailbox = Mailbox()
    mailbox.start(free_port())
    request.config.stash[MAILBOX_KEY] = mailbox
    server = ServerProcess(
        work_dir,
        {
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "smtp_security": "none",
                "notif_delay": 1,
            },
            "registration": {"require_email": "optional"},
        },
    )
    request.config.stash[SERVER_LOG_KEY] = server.log_path
    try:
        server.start()  # on failure the error carries the log tail; work_dir is kept
    except BaseException:
        mailbox.stop()
        raise
    try:
        yield server.base_url
    finally:
        server.stop()
        mailbox.stop()
        if request.session.testsfailed == 0:
            shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture
def mailbox(request: pytest.FixtureRequest, base_url: str) -> Mailbox:
    """What the server under test emailed (only when this suite started it)."""
    found = request.config.stash.get(MAILBOX_KEY, None)
    if found is None:
        pytest.skip("no mailbox: the server under test was not started by this suite")
    return found


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[Api]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Api(session, base_url)


@pytest.fixture
def register_user(api: Api) -> Callable[..., Awaitable[Registered]]:
    """`await register_user()` -> (user_id, access_token, device_id) via the UIA dummy flow."""
    return api.register_user


@pytest.fixture
async def alice(api: Api) -> Registered:
    return await api.register_user()


@pytest.fixture
async def bob(api: Api) -> Registered:
    return await api.register_user()


@pytest.fixture
async def carol(api: Api) -> Registered:
    return await api.register_user()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """On failure, show what the server said: a 500 is only explained by its log."""
    log_path = terminalreporter.config.stash.get(SERVER_LOG_KEY, None)
    stats = terminalreporter.stats
    if log_path is None or not (stats.get("failed") or stats.get("error")):
        return
    terminalreporter.section("homeserver log (tail)")
    terminalreporter.write_line(f"full log: {log_path}")
    terminalreporter.write_line(log_tail(log_path, 60))
