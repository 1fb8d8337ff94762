"""`run` with `workers` > 1: one supervisor process and N worker processes.

Python runs one core per process; a worker per core is how the server uses
the machine. Each worker is a whole server (`run --worker I`): it binds
`listen.port` with SO_REUSEPORT, so the kernel spreads new connections over
the workers with no proxy in between, and talks to the others over the bus
(config.effective_bus). The supervisor serves no request. It

- starts the embedded PostgreSQL when no DSN is configured, and hands its DSN
  to the workers (HOMESERVER_DATABASE_DSN);
- migrates and loads (or makes) the signing key once, before any worker
  starts, so workers never race to make them;
- starts each worker and waits for it to say it is listening (a byte on a
  pipe), so the next one starts on a warm database;
- starts again a worker that exits when it was not told to, logging its exit
  code or signal, with a backoff when it keeps dying at start;
- on SIGTERM or SIGINT passes SIGTERM to every worker and waits for them
  (`shutdown_grace_seconds`, then SIGKILL); on SIGHUP restarts the workers one
  after the other (a rolling restart: the others keep serving).

Each worker's metrics listener is on `metrics.port` + its index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from homeserver.config import Config

log = logging.getLogger("homeserver.supervisor")

# A worker that dies sooner than this after starting is restarted after a backoff
# (doubling up to MAX_BACKOFF_SECONDS): a broken config must not spin the machine.
STABLE_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 120.0
# Beyond shutdown_grace_seconds, what a worker gets to exit before SIGKILL.
KILL_MARGIN_SECONDS = 5.0


def describe_exit(code: int) -> str:
    """`exited with code 3` or `killed by SIGKILL` (asyncio reports a signal as -N)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process
    started_at: float
    stopping: bool = False
    exited: asyncio.Task[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.create_task(self.process.wait(), name=f"worker-{self.index}")

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    def __init__(self, config: Config, config_path: Path, dsn: str) -> None:
        self._config = config
        self._config_path = config_path
        self._dsn = dsn
        self._count = config.worker_count
        self._workers: dict[int, Worker] = {}
        self._backoff: dict[int, float] = {}
        self._stopping = asyncio.Event()
        self._rolling = asyncio.Event()
        self._changed = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop_requested)
        loop.add_signal_handler(signal.SIGHUP, self._rolling_requested)
        try:
            for index in range(self._count):
                if self._stopping.is_set():
                    break
                await self._start(index)
            log.info(
                "supervisor: %d workers serving http://%s:%d",
                len(self._workers),
                self._config.listen.host,
                self._config.listen.port,
            )
            while not self._stopping.is_set():
                await self._wait_for_news()
                if self._rolling.is_set() and not self._stopping.is_set():
                    self._rolling.clear()
                    await self._roll()
                await self._restart_dead()
        finally:
            await self._stop_all()
        return 0

    # Signals

    def _stop_requested(self) -> None:
        log.info("supervisor: stopping %d workers", len(self._workers))
        self._stopping.set()
        self._changed.set()

    def _rolling_requested(self) -> None:
        log.info("supervisor: SIGHUP, restarting the workers one after the other")
        self._rolling.set()
        self._changed.set()

    async def _wait_for_news(self) -> None:
        """Until a worker exits or a signal asks for something."""
        exits = [worker.exited for worker in self._workers.values()]
        changed = asyncio.create_task(self._changed.wait())
        try:
            await asyncio.wait([changed, *exits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        self._changed.clear()

    # Workers

    async def _start(self, index: int) -> None:
        """Start worker `index` and wait until it listens (or dies trying)."""
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env["HOMESERVER_DATABASE_DSN"] = self._dsn
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "homeserver",
                "run",
                "--config",
                str(self._config_path),
                "--worker",
                str(index),
                "--ready-fd",
                str(write_fd),
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        worker = Worker(index, process, time.monotonic())
        self._workers[index] = worker
        try:
            ready = await _wait_ready(read_fd, worker.exited, self._stopping)
        finally:
            os.close(read_fd)
        if ready:
            log.info("supervisor: worker %d (pid %d) is serving", index, worker.pid)

    async def _restart_dead(self) -> None:
        for index, worker in list(self._workers.items()):
            if not worker.exited.done() or worker.stopping or self._stopping.is_set():
                continue
            code = worker.exited.result()
            lived = time.monotonic() - worker.started_at
            backoff = 0.0
            if lived < STABLE_SECONDS:
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, 2 * self._backoff.get(index, 0.5)))
            self._backoff[index] = backoff
            log.error(
                "supervisor: worker %d (pid %d) %s after %.1f s; restarting%s",
                index,
                worker.pid,
                describe_exit(code),
                lived,
                f" in {backoff:.0f} s" if backoff else "",
            )
            del self._workers[index]
            if backoff:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                if self._stopping.is_set():
                    return
            await self._start(index)

    async def _roll(self) -> None:
        """Each worker in turn: stop it (it finishes what it holds), start its
        replacement, wait until that one serves; the others serve meanwhile."""
        for index in sorted(self._workers):
            if self._stopping.is_set():
                return
            worker = self._workers[index]
            await self._stop(worker)
            log.info("supervisor: worker %d (pid %d) stopped for the restart", index, worker.pid)
            del self._workers[index]
            await self._start(index)
        log.info("supervisor: rolling restart done")

    async def _stop(self, worker: Worker) -> int:
        worker.stopping = True
        if worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        limit = self._config.shutdown_grace_seconds + KILL_MARGIN_SECONDS
        try:
            return await asyncio.wait_for(asyncio.shield(worker.exited), limit)
        except TimeoutError:
            log.error(
                "supervisor: worker %d (pid %d) still running %.0f s after SIGTERM; killing it",
                worker.index,
                worker.pid,
                limit,
            )
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
            return await worker.exited

    async def _stop_all(self) -> None:
        stops = [self._stop(worker) for worker in self._workers.values()]
        codes = await asyncio.gather(*stops, return_exceptions=True)
        for worker, code in zip(self._workers.values(), codes, strict=True):
            if isinstance(code, int) and code != 0:
                log.warning("supervisor: worker %d %s", worker.index, describe_exit(code))
        self._workers.clear()
        log.info("supervisor: stopped")


async def _wait_ready(fd: int, exited: asyncio.Task[int], stopping: asyncio.Event) -> bool:
    """True once the worker writes to its end of the pipe; False when it exits first
    (its end closes: the read sees end of file) or the supervisor is stopping."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, on_readable)
    stop = asyncio.create_task(stopping.wait())
    waited: list[asyncio.Future[object]] = [readable, exited, stop]  # type: ignore[list-item]
    try:
        await asyncio.wait(
            waited,
            timeout=READY_TIMEOUT_SECONDS,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        loop.remove_reader(fd)
        stop.cancel()
    return readable.done() and os.read(fd, 1) == b"1"


def signal_ready(fd: int) -> None:
    """In a worker: tell the supervisor it is listening."""
    os.write(fd, b"1")
    os.close(fd)
