"""Real server processes for tests that must cross a process boundary."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
V3 = "/_matrix/client/v3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (workers' metrics: port + index)."""
    while True:
        first = free_port()
        if first + count > 65536:
            continue
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


class ServerProcess:
    """`python -m homeserver run` with a config of its own; with `workers`, the
    supervisor and its workers (metrics of worker I at `metrics_urls[I]`); `launcher`:
    a command the server is started through (one that execs its arguments)."""

    def __init__(
        self,
        work_dir: Path,
        dsn: str,
        *,
        launcher: Sequence[str] = (),
        workers: int = 1,
        port: int = 0,
        **config: Any,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / f"server-{self.port}-{time.monotonic_ns()}.log"
        # Metrics are served on a listener of their own; on unless the test configures it.
        metrics_port = free_ports(workers)
        self.metrics_urls = [
            f"http://127.0.0.1:{metrics_port + index}/metrics" for index in range(workers)
        ]
        if "metrics" in config:  # the test's own: ready does not wait for it
            self.metrics_urls = []
        self.metrics_url = self.metrics_urls[0] if self.metrics_urls else ""
        self._workers = workers
        if workers > 1:
            config["workers"] = workers
        config_path = work_dir / f"config-{self.port}.yaml"
        body = {
            "server_name": "localhost",
            "listen": {"host": "127.0.0.1", "port": self.port},
            "database": {"dsn": dsn},
            "data_dir": str(work_dir / "data"),
            "metrics": {"enabled": True, "host": "127.0.0.1", "port": metrics_port},
            # Off unless a test turns them on: the suite is faster than any person.
            "rate_limits": {"enabled": False},
            **config,
        }
        config_path.write_text(json.dumps(body))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESERVER_")}
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [*launcher, sys.executable, "-m", "homeserver", "run", "--config", str(config_path)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                for url in [self.base_url + "/health", *self.metrics_urls]:
                    with urllib.request.urlopen(url, timeout=1) as reply:
                        assert reply.status == 200
                # With workers: until the supervisor has seen each one say it serves.
                if len(self.metrics_urls) <= 1 or len(self.worker_pids()) == self._workers:
                    return
                time.sleep(0.1)
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready: {self.log_path.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of the worker now serving it, from the supervisor's log."""
        found: dict[int, int] = {}
        for index, pid in re.findall(r"worker (\d+) \(pid (\d+)\) is serving", self.log_text()):
            found[int(index)] = int(pid)
        return found

    def signal(self, signum: int) -> None:
        self._proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        return self._proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 20) -> int:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        return self._proc.returncode

    def kill(self) -> None:
        """kill -9: no shutdown at all, as when the process or its machine dies."""
        self._proc.kill()
        self._proc.wait()
        self._log.close()


@contextmanager
def running_pair(
    work_dir: Path, dsn: str, **config: Any
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two processes over one database (and the Redis `config` names), stopped cleanly.

    Both share the signing key in `work_dir`, like replicas of one server.
    """
    first = ServerProcess(work_dir, dsn, **config)
    first.wait_ready()
    second = ServerProcess(work_dir, dsn, **config)
    try:
        second.wait_ready()
        yield first, second
    finally:
        assert second.stop() == 0
        assert first.stop() == 0


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> Any:
    """One request that must answer 200; its JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as reply:
        data = await reply.json()
        assert reply.status == 200, (method, url, reply.status, data)
        return data


async def register(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, Any]:
    body = {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}}
    return dict(await call(http, "POST", f"{base}{V3}/register", body=body))


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


async def run_homeserver(*args: str, merged: bool = False, timeout_s: float = 120) -> Outcome:
    """`python -m homeserver *args`, as an operator runs it; `merged`: stderr into stdout."""
    # HOMESERVER_* variables of the caller's shell would override the file under test.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOMESERVER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homeserver",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    assert process.returncode is not None
    return Outcome(process.returncode, stdout.decode(), (stderr or b"").decode())


async def room_of_two(
    http: aiohttp.ClientSession, a: ServerProcess, b: ServerProcess
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """alice registered on `a` creates a public room, bob registered on `b` joins it."""
    alice = await register(http, a.base_url, "alice")
    bob = await register(http, b.base_url, "bob")
    room = (
        await call(
            http,
            "POST",
            f"{a.base_url}{V3}/createRoom",
            alice["access_token"],
            {"preset": "public_chat"},
        )
    )["room_id"]
    await call(http, "POST", f"{b.base_url}{V3}/join/{room}", bob["access_token"], {})
    return alice, bob, str(room)
