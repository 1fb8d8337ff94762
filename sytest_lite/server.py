"""Start the homeserver under test as a real process against a throwaway database.

Used by conftest.py when SYTEST_LITE_BASE_URL is not set. The server is driven
only through its command line and HTTP, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 10.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    # In a thread of its own: a fixture may run while pytest-asyncio owns a loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def _dsn_for(base_dsn: str, database: str) -> str:
    parts = urlsplit(base_dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 80) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A homeserver process on a free port with a database of its own."""

    def __init__(self, work_dir: Path, extra_config: dict[str, Any] | None = None) -> None:
        self.work_dir = work_dir
        self.extra_config = extra_config or {}
        self.log_path = work_dir / "server.log"
        self.base_dsn = os.environ.get("HOMESERVER_TEST_DSN") or DEFAULT_ADMIN_DSN
        self.database = f"sytest_{secrets.token_hex(6)}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._db_created = False
        # With no PostgreSQL to reach, the server runs its embedded one (empty dsn).
        self.embedded = False

    # -- database -----------------------------------------------------------

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(_dsn_for(self.base_dsn, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

    async def _drop_database(self) -> None:
        conn = await asyncpg.connect(_dsn_for(self.base_dsn, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    # -- process ------------------------------------------------------------

    def write_config(self) -> Path:
        data_dir = self.work_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "server_name": "localhost",
            "listen": {"host": "127.0.0.1", "port": self.port},
            "database": {"dsn": "" if self.embedded else _dsn_for(self.base_dsn, self.database)},
            "data_dir": str(data_dir),
            # The suite registers and sends faster than any person: it tests the
            # server's behaviour, not its rate limits.
            "rate_limits": {"enabled": False},
            **self.extra_config,
        }
        path = self.work_dir / "config.yaml"
        # JSON is YAML; no YAML library needed to write it.
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def _environment(self) -> dict[str, str]:
        # HOMESERVER_<SECTION>_<KEY> overrides config keys: HOMESERVER_TEST_DSN
        # or a developer's own overrides must not leak into the server under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESERVER_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> None:
        """Start and wait until ready; on failure, clean up before raising."""
        try:
            try:
                _run_async(self._create_database())
                self._db_created = True
            except OSError:
                if os.environ.get("HOMESERVER_TEST_DSN"):
                    raise
                self.embedded = True
            config_path = self.write_config()
            self._log = self.log_path.open("wb")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "homeserver", "run", "--config", str(config_path)],
                cwd=REPO_ROOT,
                env=self._environment(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        assert self._proc is not None
        # An embedded PostgreSQL runs initdb on first start, which takes longer.
        deadline = time.monotonic() + STARTUP_TIMEOUT_S * (3 if self.embedded else 1)
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"homeserver exited with code {self._proc.returncode} during startup;"
                    f" log tail:\n{log_tail(self.log_path)}"
                )
            try:
                url = self.base_url + "/_matrix/client/versions"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"status {resp.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(
            f"homeserver not ready after {STARTUP_TIMEOUT_S:.0f}s ({last_error});"
            f" log tail:\n{log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=SHUTDOWN_GRACE_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
            if self._db_created:
                _run_async(self._drop_database())
