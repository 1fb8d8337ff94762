"""Firebase Cloud Messaging, HTTP v1 API: one message per push, with an OAuth2 token.

The access token comes from the service account by the OAuth2 JWT bearer grant
(RFC 7523): a JWT signed RS256 with the account's private key, asserting its
`client_email` and the `firebase.messaging` scope for the token endpoint
(`token_uri`), exchanged there for an access token of about an hour. It is kept
and used until REFRESH_BEFORE_SECONDS before it expires, then renewed; a 401
renews it at once, once.

A message is a data message (room, event, type, sender, unread count: what the
app needs to fetch the event) plus, unless the app asks for data only or the
room is encrypted (push/gateway/outcome.py), a visible notification: the
sender (and room) as title, the message body as body. A token FCM calls
`UNREGISTERED` (the app was uninstalled) is rejected, so the homeserver removes
the pusher.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt

from homeserver.push.gateway.outcome import Delivered, Push

log = logging.getLogger(__name__)

SCOPE: Final = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS: Final = 3600
REFRESH_BEFORE_SECONDS: Final = 300
DEFAULT_TOKEN_URI: Final = "https://oauth2.googleapis.com/token"
DEAD_TOKEN_CODES: Final = frozenset({"UNREGISTERED"})


@dataclass(frozen=True, slots=True)
class FcmSettings:
    project_id: str
    service_account_file: Path
    data_only: bool = False
    base_url: str = "https://fcm.googleapis.com"
    token_url: str = ""  # empty: the service account's token_uri


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str

    @classmethod
    def load(cls, path: Path) -> ServiceAccount:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a service account key (a JSON object)")
        for key in ("client_email", "private_key"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{path}: the service account key has no {key}")
        key_id = data.get("private_key_id")
        uri = data.get("token_uri")
        return cls(
            data["client_email"],
            data["private_key"],
            key_id if isinstance(key_id, str) else None,
            uri if isinstance(uri, str) and uri else DEFAULT_TOKEN_URI,
        )


class FcmSender:
    def __init__(
        self,
        settings: FcmSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._account = ServiceAccount.load(settings.service_account_file)
        self._client = client
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._renewing = asyncio.Lock()
        self._url = (
            f"{settings.base_url.rstrip('/')}/v1/projects/{settings.project_id}/messages:send"
        )

    def assertion(self, now: float) -> str:
        """The signed JWT the token endpoint exchanges for an access token."""
        claims = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._token_url,
            "iat": int(now),
            "exp": int(now) + ASSERTION_SECONDS,
        }
        headers = {"kid": self._account.private_key_id} if self._account.private_key_id else None
        return jwt.encode(claims, self._account.private_key, algorithm="RS256", headers=headers)

    @property
    def _token_url(self) -> str:
        return self._settings.token_url or self._account.token_uri

    async def access_token(self, *, renew: bool = False) -> str:
        async with self._renewing:
            now = self._clock()
            if self._token is not None and not renew and now < self._expires_at:
                return self._token
            reply = await self._client.post(
                self._token_url,
                data={"grant_type": GRANT_TYPE, "assertion": self.assertion(now)},
            )
            reply.raise_for_status()
            body = reply.json()
            token, lifetime = body.get("access_token"), body.get("expires_in", 3600)
            if not isinstance(token, str) or not isinstance(lifetime, int | float):
                raise ValueError("the token endpoint answered without an access token")
            self._token = token
            self._expires_at = now + max(float(lifetime) - REFRESH_BEFORE_SECONDS, 0.0)
            return token

    def message(self, push: Push) -> dict[str, Any]:
        message: dict[str, Any] = {
            "token": push.pushkey,
            "data": push.data(),
            "android": {"priority": "high" if push.high_priority else "normal"},
        }
        shown = push.visible(self._settings.data_only)
        if shown is not None:
            title, body = shown
            message["notification"] = {"title": title, "body": body}
            if push.notification.get("room_id"):
                # One notification per room in the shade, replaced by the newest.
                message["android"]["notification"] = {"tag": push.notification["room_id"]}
        return {"message": message}

    async def send(self, push: Push) -> Delivered:
        body = self.message(push)
        try:
            token = await self.access_token()
            reply = await self._client.post(
                self._url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if reply.status_code == 401:
                token = await self.access_token(renew=True)
                reply = await self._client.post(
                    self._url, json=body, headers={"Authorization": f"Bearer {token}"}
                )
        except (httpx.HTTPError, ValueError) as error:
            log.warning("fcm: %r", error)
            return Delivered.TEMPORARY
        return _outcome(reply)


def _error_code(reply: httpx.Response) -> str | None:
    try:
        error = reply.json().get("error", {})
    except ValueError:
        return None
    for detail in error.get("details", []) if isinstance(error, dict) else []:
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    status = error.get("status") if isinstance(error, dict) else None
    return status if isinstance(status, str) else None


def _outcome(reply: httpx.Response) -> Delivered:
    if reply.status_code == 200:
        return Delivered.SENT
    code = _error_code(reply)
    if code in DEAD_TOKEN_CODES or reply.status_code == 404:
        return Delivered.REJECTED
    if reply.status_code == 429 or reply.status_code >= 500:
        return Delivered.TEMPORARY
    log.warning("fcm: push refused: %d %s", reply.status_code, code)
    return Delivered.FAILED
