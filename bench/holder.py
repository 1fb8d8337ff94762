"""`python -m bench.holder`: a helper process of the `connections` scenario that holds
long-polls and sync streams and notes when each one sees a marked message.

One process cannot hold the scenario's 25,000 sockets: its open-files limit
may be lower (20,000 here, and only root with CAP_SYS_RESOURCE may raise the
hard limit), and one source address has only about 28,000 ephemeral ports
towards one server port. So the scenario starts several holders, each from a
source address of its own (127.0.0.2, 127.0.0.3...).

Protocol: JSON lines. The first line on stdin is the job:
`{"base_url", "local_host", "timeout_ms", "ramp", "polls": [[token, since]...],
"streams": [[token, since]...]}`; then commands, each answered by one line on
stdout:

- `{"do": "open_polls", "count": N}` / `{"do": "open_streams", "count": N}`: open
  the next N (all those not yet opened without `count`) at `ramp` per second;
  answered once each was started, with how many are open so far.
- `{"do": "status"}`: how many polls are pending, streams open, answers and
  errors seen so far.
- `{"do": "await", "marker": M, "timeout": S}`: wait until every connection has
  seen a message whose body contains M (or S seconds passed); answered with
  the `time.perf_counter()` of each arrival (CLOCK_MONOTONIC, the same clock
  in every process on the machine), taken when the last byte was read.
- `{"do": "close"}`: close everything and exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import uvloop

from bench.client import CLIENT_V3, TRANSPORT_ERRORS, RawConnection, source_bound_socket
from bench.process import raise_open_files_limit, sample_process

STREAM_PATH = "/_linkchat/v1/sync/stream"
RETRY_S = 1.0


class Arrivals:
    """When each connection first saw each marker."""

    def __init__(self) -> None:
        self.markers: list[bytes] = []
        self.seen: dict[bytes, dict[str, list[float]]] = {}
        self.changed = asyncio.Event()

    def watch(self, marker: str) -> bytes:
        key = marker.encode()
        if key not in self.seen:
            self.markers.append(key)
            self.seen[key] = {"polls": [], "streams": []}
        return key

    def note(self, kind: str, data: bytes, at: float) -> None:
        for marker in self.markers:
            if marker in data:
                self.seen[marker][kind].append(at)
                self.changed.set()


class HeldPoll:
    def __init__(self, job: dict[str, Any], token: str, since: str) -> None:
        self.connection = RawConnection(job["base_url"], token, job["local_host"])
        self.since = since
        self.timeout_ms = int(job["timeout_ms"])
        self.pending = False

    async def run(self, arrivals: Arrivals, counts: Counter[str]) -> None:
        await _unbroken(self._run, arrivals, counts, "poll")

    async def _run(self, arrivals: Arrivals, counts: Counter[str]) -> None:
        while True:
            path = f"{CLIENT_V3}/sync?timeout={self.timeout_ms}&since={quote(self.since, safe='')}"
            self.pending = True
            try:
                response = await self.connection.request("GET", path, self.timeout_ms / 1000 + 30)
            except TRANSPORT_ERRORS:
                counts["poll_errors"] += 1
                await asyncio.sleep(RETRY_S)
                continue
            finally:
                self.pending = False
            counts["poll_answers"] += 1
            if response.status != 200:
                counts[f"poll_status_{response.status}"] += 1
                await asyncio.sleep(RETRY_S)
                continue
            arrivals.note("polls", response.body, response.received_at)
            self.since = orjson.loads(response.body)["next_batch"]


class HeldStream:
    def __init__(self, job: dict[str, Any], token: str, since: str) -> None:
        self.url = job["base_url"].rstrip("/") + STREAM_PATH
        self.token = token
        self.since = since
        self.open = False

    async def run(
        self, session: aiohttp.ClientSession, arrivals: Arrivals, counts: Counter[str]
    ) -> None:
        await _unbroken(lambda a, c: self._run(session, a, c), arrivals, counts, "stream")

    async def _run(
        self, session: aiohttp.ClientSession, arrivals: Arrivals, counts: Counter[str]
    ) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            try:
                async with session.ws_connect(self.url, headers=headers, autoping=True) as ws:
                    await ws.send_str(json.dumps({"since": self.since}))
                    self.open = True
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        at = time.perf_counter()
                        counts["stream_frames"] += 1
                        data = message.data.encode()
                        arrivals.note("streams", data, at)
                        self.since = orjson.loads(data).get("next_batch", self.since)
            except TRANSPORT_ERRORS:
                counts["stream_errors"] += 1
            finally:
                self.open = False
            counts["stream_closed"] += 1
            await asyncio.sleep(RETRY_S)


async def _unbroken(
    run: Callable[[Arrivals, Counter[str]], Awaitable[None]],
    arrivals: Arrivals,
    counts: Counter[str],
    kind: str,
) -> None:
    """Run a connection's loop again after anything unexpected (counted by type), so
    one odd answer (say, while the server's database restarts) cannot leave a socket
    open that no longer polls: the run would wait for it, and count it missing."""
    while True:
        try:
            await run(arrivals, counts)
        except Exception as error:
            counts[f"{kind}_failed_{type(error).__name__}"] += 1
            await asyncio.sleep(RETRY_S)


async def _ramp(starts: list[Any], per_second: float) -> None:
    began = time.perf_counter()
    for index, start in enumerate(starts):
        if per_second > 0:
            delay = began + index / per_second - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        start()


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    job = json.loads(await reader.readline())
    fd_limit = raise_open_files_limit()
    polls = [HeldPoll(job, token, since) for token, since in job["polls"]]
    streams = [HeldStream(job, token, since) for token, since in job["streams"]]
    arrivals = Arrivals()
    counts: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(
        limit=0,
        local_addr=(job["local_host"], 0),
        socket_factory=lambda info: source_bound_socket(info[0], info[1], info[2]),
    )
    session = aiohttp.ClientSession(connector=connector)
    ramp = float(job["ramp"])
    _reply({"event": "ready", "fd_limit": fd_limit})

    def start(work: Any) -> Any:
        return lambda: tasks.add(asyncio.create_task(work()))

    opened = {"polls": 0, "streams": 0}

    def next_batch(kind: str, total: int, count: int | None) -> range:
        first = opened[kind]
        opened[kind] = total if count is None else min(total, first + count)
        return range(first, opened[kind])

    while line := await reader.readline():
        command = json.loads(line)
        do = command["do"]
        if do == "open_polls":
            batch = next_batch("polls", len(polls), command.get("count"))
            await _ramp([start(lambda p=polls[i]: p.run(arrivals, counts)) for i in batch], ramp)
            _reply({"event": "polls_open", "count": opened["polls"]})
        elif do == "open_streams":
            batch = next_batch("streams", len(streams), command.get("count"))
            await _ramp(
                [start(lambda s=streams[i]: s.run(session, arrivals, counts)) for i in batch],
                ramp,
            )
            _reply({"event": "streams_open", "count": opened["streams"]})
        elif do == "status":
            me = sample_process(os.getpid())
            _reply(
                {
                    "event": "status",
                    "polls_pending": sum(poll.pending for poll in polls),
                    "streams_open": sum(stream.open for stream in streams),
                    "counts": dict(counts),
                    "rss_kb": me.rss_kb,
                    "cpu_s": me.cpu_s,
                }
            )
        elif do == "watch":
            arrivals.watch(command["marker"])
            _reply({"event": "watching"})
        elif do == "await":
            key = arrivals.watch(command["marker"])
            deadline = time.perf_counter() + float(command["timeout"])
            seen = arrivals.seen[key]
            while len(seen["polls"]) < len(polls) or len(seen["streams"]) < len(streams):
                arrivals.changed.clear()
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(arrivals.changed.wait(), remaining)
                except TimeoutError:
                    break
            _reply(
                {
                    "event": "arrivals",
                    "polls": seen["polls"],
                    "streams": seen["streams"],
                    "missing_polls": len(polls) - len(seen["polls"]),
                    "missing_streams": len(streams) - len(seen["streams"]),
                }
            )
        elif do == "close":
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for poll in polls:
        await poll.connection.close()
    await session.close()
    _reply({"event": "closed"})


if __name__ == "__main__":
    uvloop.run(main())
