"""Run a scenario against a throw-away local homeserver.

`--spawn-server` does, in order: create a fresh PostgreSQL database
`bench_<hex>`, write a config for it into a temporary directory, start
`python -m homeserver run --config ...` from the server checkout, wait until
`/_matrix/client/versions` answers, hand the base URL to the scenario, then
stop the server (SIGTERM, SIGKILL after a grace period) and drop the
database. The server is driven over HTTP only, like any other target; this
module just starts and stops the process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bench.process import raise_open_files_limit

# The checkout that contains `bench/` is the server's by default.
DEFAULT_SERVER_DIR = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PORT = 18448
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class LocalServer:
    """A spawned server: where to reach it, and its process (scenarios read its memory)."""

    base_url: str
    pid: int


class SpawnError(RuntimeError):
    """The local server could not be prepared or did not come up."""


@dataclass(frozen=True)
class SpawnOptions:
    server_dir: Path = DEFAULT_SERVER_DIR
    python: str | None = None
    admin_dsn: str = DEFAULT_ADMIN_DSN
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    startup_timeout_s: float = 60.0
    keep: bool = False

    def server_python(self) -> str:
        """The checkout's venv interpreter if there is one, else ours."""
        if self.python:
            return self.python
        venv_python = self.server_dir / ".venv" / "bin" / "python"
        return str(venv_python) if venv_python.exists() else sys.executable


def merge_config(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into `base`: nested mappings merge, the rest replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = value
    return merged


def database_dsn(admin_dsn: str, database: str) -> str:
    """The admin DSN with its database (the URL path) replaced."""
    parts = urlsplit(admin_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def write_config(work_dir: Path, options: SpawnOptions, dsn: str) -> Path:
    """Write the server config; JSON is valid YAML, so no YAML writer is needed."""
    config = merge_config(
        {
            "server_name": "localhost",
            "listen": {"host": options.host, "port": options.port},
            "database": {"dsn": dsn},
            "data_dir": str(work_dir / "data"),
            # A benchmark measures the server, not its limiter; turn them on with
            # --server-config '{"rate_limits": {"enabled": true, ...}}'.
            "rate_limits": {"enabled": False},
        },
        options.config_overrides,
    )
    (work_dir / "data").mkdir(exist_ok=True)
    path = work_dir / "config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


async def psql(admin_dsn: str, statement: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "psql",
        admin_dsn,
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-c",
        statement,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise SpawnError(f"psql {statement!r} failed: {output.decode(errors='replace').strip()}")


async def wait_until_up(
    base_url: str, process: asyncio.subprocess.Process, timeout_s: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    probe_timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=probe_timeout) as session:
        while True:
            if process.returncode is not None:
                raise SpawnError(
                    f"server exited with status {process.returncode} before answering;"
                    f" log {log_path}:\n{log_tail(log_path)}"
                )
            try:
                async with session.get(f"{base_url}/_matrix/client/versions") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SpawnError(
                    f"server did not answer within {timeout_s:.0f} s;"
                    f" log {log_path}:\n{log_tail(log_path)}"
                )
            await asyncio.sleep(0.2)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the server we started, SIGKILL it if it lingers."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@asynccontextmanager
async def spawned_server(options: SpawnOptions) -> AsyncIterator[LocalServer]:
    """Yield a fresh local server (base URL and pid); tear everything down after."""
    if not port_is_free(options.host, options.port):
        raise SpawnError(f"{options.host}:{options.port} is in use; pick --spawn-port")
    database = f"bench_{secrets.token_hex(6)}"
    work_dir = Path(tempfile.mkdtemp(prefix="bench-server-"))
    log_path = work_dir / "server.log"
    base_url = f"http://{options.host}:{options.port}"
    await psql(options.admin_dsn, f'CREATE DATABASE "{database}"')
    failed = True
    try:
        config_path = write_config(work_dir, options, database_dsn(options.admin_dsn, database))
        log_file = open_log(log_path)
        try:
            process = await asyncio.create_subprocess_exec(
                options.server_python(),
                "-m",
                "homeserver",
                "run",
                "--config",
                str(config_path),
                cwd=options.server_dir,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                # Each held long-poll is a socket; lift the child's soft fd limit.
                preexec_fn=raise_open_files_limit,
                # A session of its own, as a service has: Linux's scheduler (autogroup)
                # shares the CPU between sessions first. In the load generator's
                # session, on a machine busy with others' sessions, the server and
                # the generator split one share: a worker got 5% of a core.
                start_new_session=True,
            )
        finally:
            log_file.close()  # the child holds its own descriptor
        print(
            f"spawned server pid {process.pid} at {base_url}, database {database}, log {log_path}",
            file=sys.stderr,
        )
        up = False
        try:
            await wait_until_up(base_url, process, options.startup_timeout_s, log_path)
            up = True
            yield LocalServer(base_url, process.pid)
            failed = process.returncode is not None
        finally:
            await stop(process)
            # -15: our SIGTERM. A failed start already carries the log tail.
            if up and process.returncode not in (0, -15):
                print(
                    f"server exited with status {process.returncode}; log tail:\n"
                    f"{log_tail(log_path)}",
                    file=sys.stderr,
                )
    finally:
        if options.keep:
            print(f"kept database {database} and {work_dir}", file=sys.stderr)
        else:
            await psql(options.admin_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            if failed:
                print(f"server files kept for inspection in {work_dir}", file=sys.stderr)
            else:
                shutil.rmtree(work_dir, ignore_errors=True)
