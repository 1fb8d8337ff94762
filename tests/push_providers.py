"""Local stand-ins for FCM and APNs that speak their protocols, for the gateway's tests.

- `FakeFcm`: the OAuth2 token endpoint (the JWT bearer grant: the assertion is
  checked against the test service account's public key) and the HTTP v1
  `messages:send` endpoint (the bearer token must be one it issued).
- `FakeApns`: an HTTP/2 server (h2, cleartext with prior knowledge), checking
  each request's ES256 provider token against the test key and answering as
  APNs does (200 with apns-id, 410 Unregistered, 400 BadDeviceToken).

Keys are made per test run (`make_service_account`, `make_apns_key`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_service_account(path: Path, token_uri: str) -> rsa.RSAPublicKey:
    """A service account key file like Firebase's; its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "linkchat-test",
                "private_key_id": "kid-" + secrets.token_hex(4),
                "private_key": _pem_private(key),
                "client_email": "push@linkchat-test.iam.gserviceaccount.com",
                "token_uri": token_uri,
            }
        )
    )
    return key.public_key()


def make_apns_key(path: Path) -> ec.EllipticCurvePublicKey:
    """An APNs auth key (.p8: a P-256 key in PKCS#8); its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_text(_pem_private(key))
    return key.public_key()


class _Site:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class FakeFcm(_Site):
    def __init__(self, project_id: str) -> None:
        super().__init__()
        self.project_id = project_id
        self.public_key: rsa.RSAPublicKey | None = None
        self.assertions: list[dict[str, Any]] = []
        self.issued: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.dead: set[str] = set()
        self.down = False

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post(f"/v1/projects/{self.project_id}/messages:send", self._send)
        await self._serve(app)

    def revoke_tokens(self) -> None:
        self.issued.clear()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assert self.public_key is not None
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
            )
        except jwt.InvalidTokenError as error:
            return web.json_response({"error": "invalid_grant", "why": str(error)}, status=400)
        self.assertions.append(claims)
        token = "ya29." + secrets.token_urlsafe(16)
        self.issued.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": {"code": 503, "status": "UNAVAILABLE"}}, status=503)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued:
            return web.json_response(
                {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401
            )
        body = await request.json()
        message = body["message"]
        self.messages.append(message)
        if message["token"] in self.dead:
            error = {
                "code": 404,
                "message": "Requested entity was not found.",
                "status": "NOT_FOUND",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "UNREGISTERED",
                    }
                ],
            }
            return web.json_response({"error": error}, status=404)
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        return web.json_response({"name": name})


class FakeApns:
    """APNs over HTTP/2 (cleartext, prior knowledge)."""

    def __init__(self, team_id: str, key_id: str) -> None:
        self.team_id = team_id
        self.key_id = key_id
        self.public_key: ec.EllipticCurvePublicKey | None = None
        self.requests: list[dict[str, Any]] = []  # {path, headers, body, claims}
        self.dead: set[str] = set()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ApnsProtocol(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        assert self.public_key is not None
        token = headers.get("authorization", "").removeprefix("bearer ")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"])
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return 403, {"reason": "InvalidProviderToken"}
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return 403, {"reason": "InvalidProviderToken"}
        device = path.removeprefix("/3/device/")
        self.requests.append(
            {"path": path, "headers": headers, "body": json.loads(body), "claims": claims}
        )
        if device in self.dead:
            return 410, {"reason": "Unregistered", "timestamp": 1}
        if not all(c in "0123456789abcdef" for c in device):
            return 400, {"reason": "BadDeviceToken"}
        return 200, {}


class _ApnsProtocol(asyncio.Protocol):
    def __init__(self, server: FakeApns) -> None:
        self._server = server
        self._h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, tuple[dict[str, str], bytearray]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections += 1
        self._h2.initiate_connection()
        transport.write(self._h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self._h2.receive_data(data):
            if isinstance(event, RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers or []}
                self._streams[event.stream_id] = (headers, bytearray())
            elif isinstance(event, DataReceived):
                self._streams[event.stream_id][1].extend(event.data or b"")
                self._h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id or 0
                )
            elif isinstance(event, StreamEnded):
                self._respond(event.stream_id or 0)
            elif isinstance(event, ConnectionTerminated) and self._transport is not None:
                self._transport.close()
        if self._transport is not None:
            self._transport.write(self._h2.data_to_send())

    def _respond(self, stream_id: int) -> None:
        headers, body = self._streams.pop(stream_id)
        status, answer = self._server.answer(headers.get(":path", ""), headers, bytes(body))
        payload = json.dumps(answer).encode() if answer else b""
        response = [(":status", str(status)), ("apns-id", str(uuid.uuid4()).upper())]
        if payload:
            response.append(("content-type", "application/json"))
            response.append(("content-length", str(len(payload))))
        self._h2.send_headers(stream_id, response, end_stream=not payload)
        if payload:
            self._h2.send_data(stream_id, payload, end_stream=True)
