"""A small Matrix Client-Server API client for benchmarks.

Two layers, both reusable by every scenario:

- `Homeserver` owns one `aiohttp.ClientSession` for a base URL, with a
  connection pool sized to the scenario's concurrency, and makes requests
  without credentials (versions, register, login).
- `MatrixClient` is one logged-in user (token, device) sharing that session.
  Setup helpers (`create_room`, `join`, ...) raise `MatrixRequestError` on any
  non-200, because a benchmark on a broken setup measures nothing. Operations
  that scenarios measure (`send_event`, `send_message`, `sync_raw`) return
  the `ApiResponse`, status and elapsed time included, and never raise on a
  status, so the caller can count errors by status.

Transport failures (refused connection, timeout) raise; a measuring loop
catches `TRANSPORT_ERRORS` and counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

JsonDict = dict[str, Any]

CLIENT_V3 = "/_matrix/client/v3"

# What a measuring loop catches and counts instead of aborting the run.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)

# Headroom added to a long-poll's server-side timeout before the client gives
# up on the request: a server may legitimately answer a little late.
LONG_POLL_GRACE_S = 30.0


def path_segment(value: str) -> str:
    """Percent-encode one path segment (room IDs carry `!`, aliases `#`)."""
    return quote(value, safe="")


def unique_localpart(prefix: str = "bench") -> str:
    """A fresh user localpart such as `bench_3f9a0c12d4e6`."""
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass(frozen=True)
class ApiResponse:
    """One HTTP exchange: status, decoded JSON body, time from send to body read."""

    method: str
    path: str
    status: int
    body: JsonDict
    elapsed: float
    # perf_counter() when the response's last byte arrived, where the transport knows it.
    received_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def errcode(self) -> str | None:
        code = self.body.get("errcode")
        return code if isinstance(code, str) else None

    def expect_ok(self) -> JsonDict:
        """The body, or `MatrixRequestError` if the status is not 200."""
        if not self.ok:
            raise MatrixRequestError(self)
        return self.body


class MatrixRequestError(Exception):
    """A request that should have succeeded did not; carries the response."""

    def __init__(self, response: ApiResponse) -> None:
        error = response.body.get("error", response.body.get("_raw", ""))
        super().__init__(
            f"{response.method} {response.path} -> {response.status} "
            f"{response.errcode or ''}: {error}".rstrip()
        )
        self.response = response


def _decode_body(raw: bytes) -> JsonDict:
    # Error pages from proxies or a crashing server are not JSON; keep a prefix
    # of them so a report can show what came back.
    try:
        # orjson: a load generator sharing the machine with the server should parse cheaply.
        decoded = orjson.loads(raw) if raw else {}
    except ValueError:
        return {"_raw": raw[:500].decode("utf-8", "replace")}
    if isinstance(decoded, dict):
        return decoded
    return {"_raw": raw[:500].decode("utf-8", "replace")}


class Homeserver:
    """One base URL and the HTTP session every client of a scenario shares."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, base_url: str, *, connections: int = 100, request_timeout: float = 60.0
    ) -> AsyncIterator[Homeserver]:
        """Open a session whose pool holds `connections` sockets to the server.

        Size it to the number of requests in flight at once (senders plus
        held long-polls): a smaller pool queues requests inside the client and
        the latency measured would be the client's, not the server's.
        """
        connector = aiohttp.TCPConnector(
            limit=connections, limit_per_host=connections, ttl_dns_cache=300
        )
        timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            yield cls(session, base_url)

    def url(self, path: str) -> URL:
        return URL(self.base_url + path, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> ApiResponse:
        """Send one request; `path` starts with `/` and is already encoded."""
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        payload = data
        if json_body is not None:
            payload = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        # Not timeout=None: to aiohttp that means "no timeout at all".
        client_timeout = (
            self.session.timeout
            if request_timeout is None
            else aiohttp.ClientTimeout(total=request_timeout, sock_connect=10)
        )
        started = time.perf_counter()
        async with self.session.request(
            method,
            self.url(path),
            params=params,
            data=payload,
            headers=headers,
            timeout=client_timeout,
        ) as resp:
            raw = await resp.read()
            status = resp.status
        elapsed = time.perf_counter() - started
        return ApiResponse(method, path, status, _decode_body(raw), elapsed)

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        """A request whose body is not JSON (media): status, bytes, elapsed."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        started = time.perf_counter()
        async with self.session.request(
            method, self.url(path), params=params, headers=headers
        ) as resp:
            raw = await resp.read()
            status = resp.status
        return status, raw, time.perf_counter() - started

    async def versions(self) -> JsonDict:
        return (await self.request("GET", "/_matrix/client/versions")).expect_ok()

    async def register(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        device_id: str | None = None,
        prefix: str = "bench",
    ) -> MatrixClient:
        """Register a user through the user-interactive dummy flow and log in.

        The first request already names `m.login.dummy`; a server that wants a
        UIA session first answers 401 with `session`, and we retry with it.
        """
        username = username or unique_localpart(prefix)
        password = password or f"pw-{secrets.token_hex(8)}"
        body: JsonDict = {
            "username": username,
            "password": password,
            "auth": {"type": "m.login.dummy"},
        }
        if device_id is not None:
            body["device_id"] = device_id
        path = f"{CLIENT_V3}/register"
        resp = await self.request("POST", path, json_body=body)
        if resp.status == 401 and isinstance(resp.body.get("session"), str):
            body["auth"] = {"type": "m.login.dummy", "session": resp.body["session"]}
            resp = await self.request("POST", path, json_body=body)
        result = resp.expect_ok()
        return MatrixClient(
            server=self,
            user_id=result["user_id"],
            access_token=result["access_token"],
            device_id=result.get("device_id", ""),
            password=password,
        )

    async def register_many(
        self, count: int, *, parallel: int = 10, prefix: str = "bench"
    ) -> list[MatrixClient]:
        """Register `count` fresh users, at most `parallel` at a time.

        Bounded because registration hashes a password on the server; a
        hundred at once would measure the hash, not the scenario.
        """
        gate = asyncio.Semaphore(parallel)

        async def one() -> MatrixClient:
            async with gate:
                return await self.register(prefix=prefix)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def login(
        self, username: str, password: str, *, device_id: str | None = None
    ) -> MatrixClient:
        """Log in with a password: a new device and token for an existing user."""
        body: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        result = (await self.request("POST", f"{CLIENT_V3}/login", json_body=body)).expect_ok()
        return MatrixClient(
            server=self,
            user_id=result["user_id"],
            access_token=result["access_token"],
            device_id=result.get("device_id", ""),
            password=password,
        )


@dataclass(frozen=True)
class SyncResponse:
    """A decoded /sync body with accessors for the parts scenarios look at."""

    body: JsonDict
    elapsed: float

    @property
    def next_batch(self) -> str:
        token = self.body.get("next_batch")
        if not isinstance(token, str):
            raise ValueError("sync response without next_batch")
        return token

    def _rooms(self, section: str) -> dict[str, JsonDict]:
        rooms = self.body.get("rooms") or {}
        found = rooms.get(section) or {}
        return found if isinstance(found, dict) else {}

    def joined_room_ids(self) -> list[str]:
        return list(self._rooms("join"))

    def invited_room_ids(self) -> list[str]:
        return list(self._rooms("invite"))

    def timeline(self, room_id: str) -> list[JsonDict]:
        room = self._rooms("join").get(room_id) or {}
        events = (room.get("timeline") or {}).get("events") or []
        return [event for event in events if isinstance(event, dict)]

    def timeline_events(self) -> Iterator[tuple[str, JsonDict]]:
        """Every joined room's timeline events as (room_id, event)."""
        for room_id in self._rooms("join"):
            for event in self.timeline(room_id):
                yield room_id, event

    def to_device_events(self) -> list[JsonDict]:
        events = (self.body.get("to_device") or {}).get("events") or []
        return [event for event in events if isinstance(event, dict)]


@dataclass(frozen=True)
class RawResponse:
    """One exchange over a `RawConnection`: status, body bytes, and when (perf_counter)
    the request's bytes were handed to the socket and the response's last byte came in."""

    status: int
    body: bytes
    sent_at: float
    received_at: float

    @property
    def elapsed(self) -> float:
        return self.received_at - self.sent_at


def _complete_response(buffer: bytearray) -> tuple[int, bytes, int, bool] | None:
    """(status, body, bytes used, keep-alive) of the HTTP/1.1 response at the start
    of `buffer`, or None while it is incomplete. Content-Length or chunked bodies."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buffer[:head_end]).split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked, keep_alive = False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    at = head_end + 4
    if length is not None and not chunked:
        if len(buffer) < at + length:
            return None
        return status, bytes(buffer[at : at + length]), at + length, keep_alive
    if not chunked:
        raise ValueError("response without Content-Length or chunked body")
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", at)
            if trailer_end < 0:
                return None
            return status, b"".join(parts), trailer_end + 2, keep_alive
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class _ResponseReader(asyncio.Protocol):
    """Collects one response at a time and notes the moment its last byte arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool, float]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def expect(self) -> asyncio.Future[tuple[int, bytes, bool, float]]:
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def data_received(self, data: bytes) -> None:
        received_at = time.perf_counter()
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            complete = _complete_response(self._buffer)
        except ValueError as error:
            waiter.set_exception(error)
            return
        if complete is not None:
            status, body, used, keep_alive = complete
            del self._buffer[:used]
            waiter.set_result((status, body, keep_alive, received_at))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(EOFError(f"connection closed: {exc!r}"))


# Linux's IP_BIND_ADDRESS_NO_PORT (include/uapi/linux/in.h); Python names it from 3.12.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def source_bound_socket(
    family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A TCP socket to bind to a source address (127.0.0.2...) whose port the kernel
    picks at connect(), by the whole 4-tuple, rather than at bind(), where it searches
    every port bound on that address: with 10,000 connections from one address the
    connections scenario's holders spent 90% of their CPU in that search (system time)."""
    sock = socket.socket(family, kind, proto)
    with contextlib.suppress(OSError):  # not Linux: bind() takes the port, slowly
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    return sock


class RawConnection:
    """Requests over one keep-alive HTTP/1.1 connection of its own, one at a time.

    Latency scenarios hold dozens of polls that are each answered many times a
    second; aiohttp's client spends more CPU per request (URL and header
    objects, cookie jar, timers, connection pool) than the server spends
    answering, and on a shared machine that CPU is taken from the server being
    measured. This speaks just what the scenarios need: a request, a status, a
    Content-Length or chunked body.

    Times are taken at the socket: `sent_at` when the request's bytes are handed
    to the transport, `received_at` in the protocol callback that completes the
    response, before the scenario parses it. So a load generator busy with other
    members' responses does not add its own queueing to the server's latency.
    Failures raise `aiohttp.ClientConnectionError`, so they count as transport
    errors like any other.
    """

    def __init__(self, base_url: str, access_token: str, local_host: str | None = None) -> None:
        """`local_host`: the address to connect from (127.0.0.2...), when one source
        address's ephemeral ports (about 28,000) are too few for the scenario."""
        url = URL(base_url)
        if url.scheme != "http" or url.host is None:
            raise ValueError(f"RawConnection speaks plain http only, not {base_url}")
        self._host = url.host
        self._port = url.port or 80
        self._head = (
            f"Host: {url.host}:{self._port}\r\nAuthorization: Bearer {access_token}\r\n"
            "Accept: application/json\r\n"
        ).encode()
        self._reader: _ResponseReader | None = None
        self._local_addr = (local_host, 0) if local_host is not None else None

    async def connect(self) -> None:
        if self._reader is None or self._reader.closed:
            loop = asyncio.get_running_loop()
            if self._local_addr is None:
                _, self._reader = await loop.create_connection(
                    _ResponseReader, self._host, self._port
                )
                return
            family, kind, proto, _, address = (
                await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            )[0]
            sock = source_bound_socket(family, kind, proto)
            try:
                sock.bind(self._local_addr)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except BaseException:
                sock.close()
                raise
            _, self._reader = await loop.create_connection(_ResponseReader, sock=sock)

    def send(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[float, asyncio.Future[tuple[int, bytes, bool, float]]]:
        """Write a request now (call `connect` first); returns when its bytes went to
        the socket and the future of its response."""
        reader = self._reader
        if reader is None or reader.transport is None or reader.closed:
            raise aiohttp.ClientConnectionError("not connected")
        head = method.encode() + b" " + path.encode() + b" HTTP/1.1\r\n" + self._head
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        response = reader.expect()
        reader.transport.write(head + b"\r\n" + (body or b""))
        return time.perf_counter(), response

    async def request(
        self, method: str, path: str, timeout_s: float, body: bytes | None = None
    ) -> RawResponse:
        try:
            async with asyncio.timeout(timeout_s):
                await self.connect()
                sent_at, response = self.send(method, path, body)
                status, raw, keep_alive, received_at = await response
        except (OSError, EOFError, ValueError, TimeoutError) as error:
            await self.close()
            raise aiohttp.ClientConnectionError(f"request failed: {error!r}") from error
        if not keep_alive:
            await self.close()
        return RawResponse(status, raw, sent_at, received_at)

    async def get(self, path: str, timeout_s: float) -> tuple[int, bytes, float]:
        """GET `path` (already encoded, query included): status, body, elapsed seconds."""
        response = await self.request("GET", path, timeout_s)
        return response.status, response.body, response.elapsed

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader.transport is not None:
            reader.transport.close()


@dataclass
class MatrixClient:
    """One logged-in user on a `Homeserver`."""

    server: Homeserver
    user_id: str
    access_token: str
    device_id: str
    password: str | None = None
    _txn_prefix: str = field(default_factory=lambda: secrets.token_hex(4))
    _txn_counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def localpart(self) -> str:
        return self.user_id.removeprefix("@").split(":", 1)[0]

    def next_txn_id(self) -> str:
        """A transaction ID unique for this client (idempotency key for sends)."""
        return f"{self._txn_prefix}-{next(self._txn_counter)}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> ApiResponse:
        return await self.server.request(
            method,
            path,
            token=self.access_token,
            json_body=json_body,
            params=params,
            data=data,
            content_type=content_type,
            request_timeout=request_timeout,
        )

    async def whoami(self) -> JsonDict:
        return (await self.request("GET", f"{CLIENT_V3}/account/whoami")).expect_ok()

    async def create_room(
        self,
        *,
        preset: str = "public_chat",
        name: str | None = None,
        topic: str | None = None,
        invite: Sequence[str] = (),
        is_direct: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a room and return its ID; `extra` adds any other createRoom key."""
        body: JsonDict = {"preset": preset}
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if invite:
            body["invite"] = list(invite)
        if is_direct:
            body["is_direct"] = True
        if extra:
            body.update(extra)
        result = (await self.request("POST", f"{CLIENT_V3}/createRoom", json_body=body)).expect_ok()
        room_id: str = result["room_id"]
        return room_id

    async def join(self, room_id_or_alias: str) -> str:
        path = f"{CLIENT_V3}/join/{path_segment(room_id_or_alias)}"
        room_id: str = (await self.request("POST", path, json_body={})).expect_ok()["room_id"]
        return room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        path = f"{CLIENT_V3}/rooms/{path_segment(room_id)}/invite"
        (await self.request("POST", path, json_body={"user_id": user_id})).expect_ok()

    async def leave(self, room_id: str) -> None:
        path = f"{CLIENT_V3}/rooms/{path_segment(room_id)}/leave"
        (await self.request("POST", path, json_body={})).expect_ok()

    async def send_event(
        self,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any],
        *,
        txn_id: str | None = None,
    ) -> ApiResponse:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}; does not raise on status."""
        path = (
            f"{CLIENT_V3}/rooms/{path_segment(room_id)}/send/{path_segment(event_type)}/"
            f"{path_segment(txn_id or self.next_txn_id())}"
        )
        return await self.request("PUT", path, json_body=content)

    async def send_message(
        self, room_id: str, body: str, *, msgtype: str = "m.text", txn_id: str | None = None
    ) -> ApiResponse:
        """Send an `m.room.message`; does not raise on status."""
        content = {"msgtype": msgtype, "body": body}
        return await self.send_event(room_id, "m.room.message", content, txn_id=txn_id)

    async def send_state(
        self, room_id: str, event_type: str, content: Mapping[str, Any], state_key: str = ""
    ) -> str:
        path = (
            f"{CLIENT_V3}/rooms/{path_segment(room_id)}/state/{path_segment(event_type)}/"
            f"{path_segment(state_key)}"
        )
        event_id: str = (await self.request("PUT", path, json_body=content)).expect_ok()["event_id"]
        return event_id

    async def messages(
        self,
        room_id: str,
        *,
        from_token: str | None = None,
        direction: str = "b",
        limit: int = 10,
    ) -> JsonDict:
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        path = f"{CLIENT_V3}/rooms/{path_segment(room_id)}/messages"
        return (await self.request("GET", path, params=params)).expect_ok()

    async def sync_raw(
        self,
        *,
        since: str | None = None,
        timeout_ms: int = 0,
        sync_filter: str | Mapping[str, Any] | None = None,
        full_state: bool = False,
        set_presence: str | None = None,
    ) -> ApiResponse:
        """GET /sync; long-polls up to `timeout_ms` when `since` is given.

        Does not raise on status. `sync_filter` is a filter ID or an inline
        filter object.
        """
        params: dict[str, str] = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        if sync_filter is not None:
            params["filter"] = (
                sync_filter if isinstance(sync_filter, str) else json.dumps(sync_filter)
            )
        if full_state:
            params["full_state"] = "true"
        if set_presence is not None:
            params["set_presence"] = set_presence
        return await self.request(
            "GET",
            f"{CLIENT_V3}/sync",
            params=params,
            request_timeout=timeout_ms / 1000 + LONG_POLL_GRACE_S,
        )

    def raw_connection(self) -> RawConnection:
        """A connection of this client's own, for `poll_sync` or timed sends."""
        return RawConnection(self.server.base_url, self.access_token)

    async def poll_sync(
        self, poller: RawConnection, *, since: str | None, timeout_ms: int, filter_param: str
    ) -> ApiResponse:
        """`sync_raw` over `poller`: GET /sync with `since`, `timeout` and an encoded filter
        (an ID, or inline JSON text)."""
        query = f"timeout={timeout_ms}&filter={quote(filter_param, safe='')}"
        if since is not None:
            query += f"&since={quote(since, safe='')}"
        path = f"{CLIENT_V3}/sync?{query}"
        raw = await poller.request("GET", path, timeout_ms / 1000 + LONG_POLL_GRACE_S)
        return ApiResponse(
            "GET",
            f"{CLIENT_V3}/sync",
            raw.status,
            _decode_body(raw.body),
            raw.elapsed,
            received_at=raw.received_at,
        )

    async def sync(
        self,
        *,
        since: str | None = None,
        timeout_ms: int = 0,
        sync_filter: str | Mapping[str, Any] | None = None,
        full_state: bool = False,
        set_presence: str | None = None,
    ) -> SyncResponse:
        """GET /sync, raising `MatrixRequestError` on a non-200."""
        resp = await self.sync_raw(
            since=since,
            timeout_ms=timeout_ms,
            sync_filter=sync_filter,
            full_state=full_state,
            set_presence=set_presence,
        )
        return SyncResponse(resp.expect_ok(), resp.elapsed)

    def sync_stream(
        self,
        *,
        timeout_ms: int = 30_000,
        sync_filter: str | Mapping[str, Any] | None = None,
        since: str | None = None,
    ) -> SyncStream:
        return SyncStream(self, timeout_ms=timeout_ms, sync_filter=sync_filter, since=since)

    async def logout(self) -> None:
        (await self.request("POST", f"{CLIENT_V3}/logout", json_body={})).expect_ok()


class SyncStream:
    """Successive long-polls for one client, carrying `since` from one to the next.

    Typical use in a latency scenario: `await stream.catch_up()` once so the
    next poll starts after the setup events, then `async for arrived_at,
    room_id, event in stream.events():` while senders send. `arrived_at` is
    `time.perf_counter()` when the response carrying the event was read.
    """

    def __init__(
        self,
        client: MatrixClient,
        *,
        timeout_ms: int = 30_000,
        sync_filter: str | Mapping[str, Any] | None = None,
        since: str | None = None,
    ) -> None:
        self.client = client
        self.timeout_ms = timeout_ms
        self.sync_filter = sync_filter
        self.since = since
        self.polls = 0

    async def poll(self, timeout_ms: int | None = None) -> SyncResponse:
        """One sync from the current position; the first one (no `since`) is initial."""
        result = await self.client.sync(
            since=self.since,
            timeout_ms=self.timeout_ms if timeout_ms is None else timeout_ms,
            sync_filter=self.sync_filter,
        )
        self.since = result.next_batch
        self.polls += 1
        return result

    async def catch_up(self) -> SyncResponse:
        """Sync without waiting, so the stream's position is the server's latest."""
        return await self.poll(timeout_ms=0)

    async def events(self) -> AsyncGenerator[tuple[float, str, JsonDict], None]:
        """Yield (arrival time, room_id, event) for every timeline event, forever."""
        while True:
            result = await self.poll()
            arrived_at = time.perf_counter()
            for room_id, event in result.timeline_events():
                yield arrived_at, room_id, event

    async def wait_for(
        self,
        predicate: Callable[[str, JsonDict], bool],
        *,
        deadline_s: float,
    ) -> tuple[float, str, JsonDict]:
        """The first timeline event matching `predicate`, or `TimeoutError` after `deadline_s`."""
        async with asyncio.timeout(deadline_s), aclosing(self.events()) as events:
            async for arrived_at, room_id, event in events:
                if predicate(room_id, event):
                    return arrived_at, room_id, event
        raise TimeoutError  # unreachable: events() never ends
