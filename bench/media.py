"""Scenario `media`: upload and download throughput, and the server's memory during a big upload.

One user uploads a `--size-mb` file (`POST /_matrix/media/v3/upload`, body
streamed from a generator, chunked) and downloads it back
(`GET /_matrix/client/v1/media/download/...`, read in chunks), `--repeats`
times. The client never holds the file either: it repeats one random
`--chunk-kb` block and checks the download against a running sha256.

While each transfer runs, the server's VmRSS (`/proc/PID/status`) is sampled
every `--sample-ms`; reported are RSS before, the peak during the upload and
the download, and the increase. A streaming server grows by little more than
its buffers; one that reads the body into memory grows by the file's size.
The run's verdict: upload RSS increase below `--rss-budget-mb` (default 50).

The server must accept the size: with `--spawn-server` its
media.max_upload_bytes is raised to fit (SCENARIO.server_config); against
another server, `m.upload.size` from the media config is checked first.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.client import Homeserver, MatrixClient
from bench.process import ServerWatch
from bench.report import Report, Table, format_number
from bench.scenario import Scenario

MiB = 1024 * 1024
UPLOAD_PATH = "/_matrix/media/v3/upload"
CONFIG_PATH = "/_matrix/client/v1/media/config"
DOWNLOAD_PREFIX = "/_matrix/client/v1/media/download/"
# What --spawn-server configures: room for the default 200 MB file and more.
SPAWN_MAX_UPLOAD_BYTES = 1024 * MiB


@dataclass(frozen=True)
class MediaOptions:
    size_mb: int
    chunk_kb: int
    repeats: int
    sample_ms: int
    rss_budget_mb: int

    @property
    def size_bytes(self) -> int:
        return self.size_mb * 1_000_000

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MediaOptions:
        return cls(
            size_mb=max(1, int(args.size_mb)),
            chunk_kb=max(1, int(args.chunk_kb)),
            repeats=max(1, int(args.repeats)),
            sample_ms=max(5, int(args.sample_ms)),
            rss_budget_mb=int(args.rss_budget_mb),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=int, default=200, help="file size in MB (default 200)")
    parser.add_argument(
        "--chunk-kb", type=int, default=256, help="client write/read chunk in KiB (default 256)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="upload+download rounds (default 1)")
    parser.add_argument(
        "--sample-ms", type=int, default=20, help="server RSS sampling period (default 20 ms)"
    )
    parser.add_argument(
        "--rss-budget-mb",
        type=int,
        default=50,
        help="largest acceptable server RSS increase during an upload (default 50)",
    )


@dataclass
class RssSampler:
    """Peak VmRSS of the server while a transfer runs (nothing without a pid)."""

    watch: ServerWatch
    period_s: float
    peak_kb: int = 0
    samples: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _run(self) -> None:
        while True:
            sample = self.watch.sample()
            if sample is not None:
                self.peak_kb = max(self.peak_kb, sample.rss_kb)
                self.samples += 1
            await asyncio.sleep(self.period_s)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        sample = self.watch.sample()
        if sample is not None:
            self.peak_kb = max(self.peak_kb, sample.rss_kb)


@dataclass
class Round:
    upload_s: float
    download_s: float
    rss_before_kb: int | None
    upload_peak_kb: int | None
    download_peak_kb: int | None
    intact: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "upload_s": round(self.upload_s, 3),
            "download_s": round(self.download_s, 3),
            "rss_before_kb": self.rss_before_kb,
            "upload_peak_kb": self.upload_peak_kb,
            "download_peak_kb": self.download_peak_kb,
            "intact": self.intact,
            "error": self.error,
        }


async def _body(block: bytes, size: int, digest: Any) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        digest.update(piece)
        sent += len(piece)
        yield piece


async def _upload(
    server: Homeserver, user: MatrixClient, options: MediaOptions, block: bytes
) -> tuple[str, str, float]:
    """(content URI, sha256, seconds)."""
    digest = hashlib.sha256()
    headers = {
        "Authorization": f"Bearer {user.access_token}",
        "Content-Type": "application/octet-stream",
    }
    started = time.perf_counter()
    async with server.session.post(
        server.url(UPLOAD_PATH),
        params={"filename": "bench.bin"},
        data=_body(block, options.size_bytes, digest),
        headers=headers,
    ) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"upload -> {resp.status} {body}")
    return str(body["content_uri"]), digest.hexdigest(), time.perf_counter() - started


async def _download(
    server: Homeserver, user: MatrixClient, uri: str, chunk: int
) -> tuple[str, int, float]:
    """(sha256, bytes, seconds)."""
    digest = hashlib.sha256()
    size = 0
    started = time.perf_counter()
    async with server.session.get(
        server.url(DOWNLOAD_PREFIX + uri.removeprefix("mxc://")),
        headers={"Authorization": f"Bearer {user.access_token}"},
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"download -> {resp.status} {await resp.text()}")
        async for piece in resp.content.iter_chunked(chunk):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size, time.perf_counter() - started


async def one_round(
    server: Homeserver,
    user: MatrixClient,
    options: MediaOptions,
    watch: ServerWatch,
    block: bytes,
) -> Round:
    before = watch.sample()
    period = options.sample_ms / 1000
    try:
        async with RssSampler(watch, period) as up:
            uri, sent_hash, upload_s = await _upload(server, user, options, block)
        async with RssSampler(watch, period) as down:
            got_hash, got_size, download_s = await _download(
                server, user, uri, options.chunk_kb * 1024
            )
    except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
        return Round(0.0, 0.0, None, None, None, False, f"{type(error).__name__}: {error}")
    pid_known = before is not None
    return Round(
        upload_s,
        download_s,
        before.rss_kb if before is not None else None,
        up.peak_kb if pid_known else None,
        down.peak_kb if pid_known else None,
        got_hash == sent_hash and got_size == options.size_bytes,
    )


def _mb_per_s(size_bytes: int, seconds: float) -> float | None:
    return size_bytes / 1_000_000 / seconds if seconds > 0 else None


def _delta_mib(peak: int | None, before: int | None) -> float | None:
    return (peak - before) / 1024 if peak is not None and before is not None else None


def build_table(options: MediaOptions, rounds: list[Round]) -> Table:
    table = Table(
        [
            "round",
            "MB",
            "up s",
            "up MB/s",
            "down s",
            "down MB/s",
            "RSS before MiB",
            "up peak MiB",
            "up +MiB",
            "down +MiB",
            "intact",
        ]
    )
    for index, r in enumerate(rounds, start=1):
        table.rows.append(
            [
                str(index),
                str(options.size_mb),
                format_number(r.upload_s, 2),
                format_number(_mb_per_s(options.size_bytes, r.upload_s)),
                format_number(r.download_s, 2),
                format_number(_mb_per_s(options.size_bytes, r.download_s)),
                format_number(r.rss_before_kb / 1024 if r.rss_before_kb else None),
                format_number(r.upload_peak_kb / 1024 if r.upload_peak_kb else None),
                format_number(_delta_mib(r.upload_peak_kb, r.rss_before_kb)),
                format_number(_delta_mib(r.download_peak_kb, r.rss_before_kb)),
                "yes" if r.intact else "NO",
            ]
        )
    return table


async def run(base_url: str, args: argparse.Namespace) -> Report:
    options = MediaOptions.from_args(args)
    started_at = datetime.now(UTC)
    watch = ServerWatch(args.server_pid, None)
    block = os.urandom(options.chunk_kb * 1024)
    rounds: list[Round] = []
    notes: list[str] = []
    request_timeout = max(600.0, options.size_bytes / 1_000_000)  # 1 MB/s at worst
    async with Homeserver.connect(base_url, connections=4, request_timeout=request_timeout) as hs:
        user = await hs.register(prefix="bench_media")
        config = (await hs.request("GET", CONFIG_PATH, token=user.access_token)).expect_ok()
        limit = config.get("m.upload.size")
        if isinstance(limit, int) and limit < options.size_bytes:
            notes.append(
                f"the server accepts at most {limit} bytes (m.upload.size), less than "
                f"{options.size_bytes}: raise media.max_upload_bytes or lower --size-mb"
            )
        else:
            for _ in range(options.repeats):
                rounds.append(await one_round(hs, user, options, watch, block))

    budget_kb = options.rss_budget_mb * 1024
    deltas = [
        r.upload_peak_kb - r.rss_before_kb
        for r in rounds
        if r.upload_peak_kb is not None and r.rss_before_kb is not None
    ]
    if deltas:
        worst = max(deltas)
        verdict = "within" if worst < budget_kb else "OVER"
        notes.append(
            f"server RSS increase during upload: at most {worst / 1024:.1f} MiB, {verdict} the "
            f"{options.rss_budget_mb} MiB budget"
        )
    elif rounds:
        notes.append("no server pid (--spawn-server or --server-pid): RSS not measured")
    notes.extend(f"round {i}: {r.error}" for i, r in enumerate(rounds, 1) if r.error)
    notes.append(
        "MB = 10^6 bytes; up s: from the first byte sent to the upload's answer (the server "
        "has fsynced the file and appended its record); down s: until the last byte was read."
    )
    return Report(
        scenario="media",
        base_url=base_url,
        params=asdict(options),
        results=[r.as_json() for r in rounds],
        table=build_table(options, rounds),
        notes=notes,
        started_at=started_at,
    )


SCENARIO = Scenario(
    name="media",
    help="upload and download MB/s, and server RSS during a big upload",
    add_arguments=add_arguments,
    run=run,
    server_config={"media": {"max_upload_bytes": SPAWN_MAX_UPLOAD_BYTES}},
)
