"""A small Matrix client over the test server, so tests read like what a client does."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

V3 = "/_matrix/client/v3/"
# How long `eventually` waits for a condition: generous, for a busy machine.
EVENTUALLY_SECONDS = 10.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class User:
    user_id: str
    token: str
    device_id: str
    password: str


class MatrixClient:
    def __init__(self, http: TestClient[web.Request, web.Application]) -> None:
        self.http = http

    @property
    def base_url(self) -> str:
        return str(self.http.make_url("")).rstrip("/")

    @property
    def app(self) -> web.Application:
        return self.http.app  # type: ignore[return-value]

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: User | None = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        url = path if path.startswith("/") else V3 + path
        sent_headers = dict(headers or {})
        if user is not None:
            token = user.token
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        async with self.http.request(method, url, data=data, headers=sent_headers) as response:
            text = await response.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Reply(response.status, parsed, CIMultiDict(response.headers))

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        reply = await self.request(method, path, body, **kwargs)
        assert reply.status == 200, f"{method} {path} -> {reply.status} {reply.body}"
        return reply.body

    async def register(self, localpart: str | None = None, password: str = "correct horse") -> User:
        localpart = localpart or "user_" + secrets.token_hex(5)
        body = await self.ok(
            "POST",
            "register",
            {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}},
        )
        return User(body["user_id"], body["access_token"], body["device_id"], password)

    async def create_room(self, user: User, **body: Any) -> str:
        reply = await self.ok("POST", "createRoom", body, user=user)
        return str(reply["room_id"])

    async def room_of_two(self) -> tuple[User, User, str]:
        """Two new users in a new public room: alice created it, bob joined."""
        alice, bob = await self.register(), await self.register()
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        return alice, bob, room

    async def join(self, user: User, room: str) -> None:
        await self.ok("POST", f"join/{room}", {}, user=user)

    async def send(
        self,
        user: User,
        room_id: str,
        content: dict[str, Any] | None = None,
        event_type: str = "m.room.message",
        txn_id: str | None = None,
    ) -> str:
        content = content if content is not None else {"msgtype": "m.text", "body": "hello"}
        txn_id = txn_id or secrets.token_hex(8)
        reply = await self.ok(
            "PUT", f"rooms/{room_id}/send/{event_type}/{txn_id}", content, user=user
        )
        return str(reply["event_id"])

    async def sync(
        self, user: User, since: str | None = None, wait_ms: int = 0, **params: str
    ) -> dict[str, Any]:
        """GET /sync: answered at once, or held up to `wait_ms` for something new."""
        query = [f"timeout={wait_ms}"] + ([f"since={since}"] if since else [])
        query += [f"{key}={value}" for key, value in params.items()]
        return dict(await self.ok("GET", "sync?" + "&".join(query), user=user))

    async def login(self, user: User, **extra: Any) -> User:
        """A new device of `user`, logged in with their password (`extra` joins the body)."""
        body = await self.ok(
            "POST",
            "login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.user_id},
                "password": user.password,
                **extra,
            },
        )
        return User(body["user_id"], body["access_token"], body["device_id"], user.password)

    async def set_level(self, admin: User, room: str, user: User, level: int) -> None:
        """`admin` gives `user` the power level `level` in `room`."""
        path = f"rooms/{room}/state/m.room.power_levels/"
        levels: dict[str, Any] = await self.ok("GET", path, user=admin)
        levels["users"][user.user_id] = level
        await self.ok("PUT", path, levels, user=admin)

    @staticmethod
    async def eventually(
        check: Callable[[], Awaitable[bool]], seconds: float = EVENTUALLY_SECONDS
    ) -> None:
        """Wait until `check()` holds; fail if it still does not after `seconds`."""
        deadline = time.monotonic() + seconds
        while not await check():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.05)
