"""A Push Gateway of our own for tests: records what the homeserver POSTs to it.

It answers like a gateway (`{"rejected": [...]}`), and can be told to be down
(503 or a closed port), or to reject some pushkeys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

NOTIFY = "/_matrix/push/v1/notify"


class RecordingGateway:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.down = False
        self.rejecting: set[str] = set()
        self.refused = 0  # requests answered 503 while down
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post(NOTIFY, self._notify)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notify(self, request: web.Request) -> web.Response:
        if self.down:
            self.refused += 1
            return web.json_response({"error": "down"}, status=503)
        body = await request.json()
        self.received.append(body)
        self._arrived.set()
        devices = body["notification"]["devices"]
        rejected = [d["pushkey"] for d in devices if d["pushkey"] in self.rejecting]
        return web.json_response({"rejected": rejected})

    def for_pushkey(self, pushkey: str) -> list[dict[str, Any]]:
        return [
            body["notification"]
            for body in self.received
            if any(d["pushkey"] == pushkey for d in body["notification"]["devices"])
        ]

    async def wait_for(
        self, condition: Callable[[], bool], within: float = 30.0, what: str = "notifications"
    ) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.received!r}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), 0.2)
            except TimeoutError:
                pass
