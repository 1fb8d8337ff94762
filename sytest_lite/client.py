"""A thin HTTP client for the suite: requests in, `(status, body)` out.

Paths starting with `/_` are used verbatim; any other path is taken as relative
to `/_matrix/client/v3`. Path segments that carry identifiers (room IDs,
aliases, event IDs) must be escaped with `q()`, because `#` in an alias would
otherwise end the path.
"""

from __future__ import annotations

import json as jsonlib
import secrets
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

CLIENT_V3 = "/_matrix/client/v3"
SERVER_NAME = "localhost"
DEFAULT_PASSWORD = "correct horse battery staple"

JSONValue = Any


def q(segment: str) -> str:
    """Percent-encode one path segment, `/` and `#` included."""
    return quote(segment, safe="")


def localpart(user_id: str) -> str:
    """`@alice:localhost` -> `alice`."""
    return user_id[1:].split(":", 1)[0]


def fresh_username(prefix: str = "u") -> str:
    """A valid, unused-in-practice localpart: lower-case letters and digits only."""
    return f"{prefix}{secrets.token_hex(6)}"


def password_auth(user_id: str, password: str, session: str | None) -> dict[str, JSONValue]:
    """The `auth` dict of a UIA `m.login.password` stage, identifying the user by m.id.user."""
    auth: dict[str, JSONValue] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart(user_id)},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


class Registered(NamedTuple):
    """What `register_user` returns; unpacks as `(user_id, access_token, device_id)`."""

    user_id: str
    access_token: str
    device_id: str


@dataclass(frozen=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: JSONValue


class Api:
    """One aiohttp session against one base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    def url(self, path: str) -> URL:
        full = path if path.startswith("/_") else CLIENT_V3 + path
        return URL(self._base_url + full, encoded=True)

    async def request_full(
        self,
        method: str,
        path: str,
        json: JSONValue = None,
        token: str | None = None,
        raw_body: bytes | str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        send_headers: dict[str, str] = dict(headers or {})
        if token is not None:
            send_headers["Authorization"] = f"Bearer {token}"
        data: bytes | None = None
        if raw_body is not None:
            data = raw_body.encode() if isinstance(raw_body, str) else raw_body
            send_headers.setdefault("Content-Type", "application/json")
        elif json is not None:
            data = jsonlib.dumps(json).encode()
            send_headers.setdefault("Content-Type", "application/json")
        async with self._session.request(
            method, self.url(path), data=data, headers=send_headers, params=params
        ) as resp:
            text = await resp.text()
            body: JSONValue
            try:
                body = jsonlib.loads(text) if text else None
            except ValueError:
                body = text
            return Response(resp.status, resp.headers, body)

    async def request(
        self,
        method: str,
        path: str,
        json: JSONValue = None,
        token: str | None = None,
        raw_body: bytes | str | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, JSONValue]:
        resp = await self.request_full(
            method, path, json=json, token=token, raw_body=raw_body, params=params
        )
        return resp.status, resp.body

    # -- accounts ---------------------------------------------------------

    async def register_user(
        self,
        username: str | None = None,
        password: str = DEFAULT_PASSWORD,
        **extra: JSONValue,
    ) -> Registered:
        """Register through the UIA dummy flow; fails the test on anything unexpected."""
        body: dict[str, JSONValue] = {
            "username": username or fresh_username(),
            "password": password,
            **extra,
        }
        status, first = await self.request("POST", "/register", json=body)
        if status == 401:
            assert isinstance(first, dict) and "session" in first, first
            body["auth"] = {"type": "m.login.dummy", "session": first["session"]}
            status, first = await self.request("POST", "/register", json=body)
        assert status == 200, (status, first)
        return Registered(first["user_id"], first["access_token"], first["device_id"])

    async def login(
        self, user: str, password: str = DEFAULT_PASSWORD, **extra: JSONValue
    ) -> tuple[int, JSONValue]:
        return await self.request(
            "POST",
            "/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                **extra,
            },
        )

    async def login_ok(self, user: str, password: str = DEFAULT_PASSWORD) -> Registered:
        status, body = await self.login(user, password)
        assert status == 200, (status, body)
        return Registered(body["user_id"], body["access_token"], body["device_id"])

    # -- rooms --------------------------------------------------------------

    async def create_room(self, token: str, **body: JSONValue) -> str:
        status, resp = await self.request("POST", "/createRoom", json=body, token=token)
        assert status == 200, (status, resp)
        room_id = resp["room_id"]
        assert isinstance(room_id, str) and room_id.startswith("!"), resp
        return room_id

    async def join(self, token: str, room_id_or_alias: str) -> tuple[int, JSONValue]:
        return await self.request("POST", f"/join/{q(room_id_or_alias)}", json={}, token=token)

    async def join_ok(self, token: str, room_id_or_alias: str) -> str:
        status, body = await self.join(token, room_id_or_alias)
        assert status == 200, (status, body)
        return str(body["room_id"])

    async def membership_action(
        self, token: str, room_id: str, action: str, user_id: str | None = None
    ) -> tuple[int, JSONValue]:
        """POST /rooms/{roomId}/{invite|kick|ban|unban|leave|forget}."""
        body: dict[str, JSONValue] = {} if user_id is None else {"user_id": user_id}
        return await self.request("POST", f"/rooms/{q(room_id)}/{action}", json=body, token=token)

    async def membership_action_ok(
        self, token: str, room_id: str, action: str, user_id: str | None = None
    ) -> None:
        status, body = await self.membership_action(token, room_id, action, user_id)
        assert status == 200, (action, status, body)

    async def get_state(
        self, token: str, room_id: str, event_type: str, state_key: str = ""
    ) -> tuple[int, JSONValue]:
        return await self.request(
            "GET", f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}", token=token
        )

    async def state_content(
        self, token: str, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, JSONValue]:
        status, body = await self.get_state(token, room_id, event_type, state_key)
        assert status == 200, (event_type, state_key, status, body)
        assert isinstance(body, dict), body
        return body

    async def put_state(
        self,
        token: str,
        room_id: str,
        event_type: str,
        content: JSONValue,
        state_key: str = "",
    ) -> tuple[int, JSONValue]:
        return await self.request(
            "PUT",
            f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}",
            json=content,
            token=token,
        )

    async def send(
        self,
        token: str,
        room_id: str,
        event_type: str,
        content: JSONValue,
        txn_id: str | None = None,
    ) -> tuple[int, JSONValue]:
        txn = txn_id or secrets.token_hex(8)
        return await self.request(
            "PUT",
            f"/rooms/{q(room_id)}/send/{q(event_type)}/{q(txn)}",
            json=content,
            token=token,
        )

    async def send_text(self, token: str, room_id: str, text: str = "hello") -> str:
        status, body = await self.send(
            token, room_id, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        assert status == 200, (status, body)
        event_id = body["event_id"]
        assert isinstance(event_id, str) and event_id.startswith("$"), body
        return event_id

    async def joined_rooms(self, token: str) -> list[str]:
        status, body = await self.request("GET", "/joined_rooms", token=token)
        assert status == 200, (status, body)
        rooms = body["joined_rooms"]
        assert isinstance(rooms, list), body
        return [str(r) for r in rooms]


def assert_error(status: int, body: JSONValue, expected_status: int, errcode: str) -> None:
    """A standard error response: the status and errcode the spec names, plus an `error` string."""
    assert (status, body.get("errcode") if isinstance(body, dict) else body) == (
        expected_status,
        errcode,
    ), f"expected {expected_status} {errcode}, got {status} {body!r}"
    assert isinstance(body.get("error", ""), str), body
