"""Apple Push Notification service: HTTP/2, token-based (a .p8 key, ES256 provider tokens).

APNs speaks HTTP/2 only; the client (httpx with h2) keeps one connection per
app and multiplexes the pushes over it. Each request carries a provider token:
a JWT signed ES256 with the team's APNs auth key (header `kid` = the key ID,
claims `iss` = the team ID and `iat`). Apple refuses tokens renewed more than
once every 20 minutes and expires them after an hour, so one is reused for
RENEW_AFTER_SECONDS, and renewed early only when APNs answers 403
ExpiredProviderToken.

Per push: `apns-topic` (the bundle ID), `apns-push-type` (`alert`, or
`background` for a data-only push), `apns-priority` (10 now, 5 when it may
wait; background pushes must be 5), `apns-collapse-id` (the room: the newest
replaces the older in the notification centre). The body's `aps.badge` is the
unread count; a notification of the badge alone (the user read a room
elsewhere) is an alert push of `aps.badge` only, at priority 5. A token APNs
calls dead (410 Unregistered, 400 BadDeviceToken) is rejected, so the
homeserver removes the pusher.

Pushkeys: the spec recommends the APNs token base64-encoded; a pushkey that is
not already hexadecimal is decoded from base64 to the hex APNs wants.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt

from homeserver.push.gateway.outcome import Delivered, Push

log = logging.getLogger(__name__)

PRODUCTION: Final = "https://api.push.apple.com"
SANDBOX: Final = "https://api.sandbox.push.apple.com"
RENEW_AFTER_SECONDS: Final = 50 * 60
DEAD_TOKEN_REASONS: Final = frozenset({"Unregistered", "BadDeviceToken"})
MAX_COLLAPSE_ID_BYTES: Final = 64
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True, slots=True)
class ApnsSettings:
    team_id: str
    key_id: str
    key_file: Path
    topic: str
    sandbox: bool = False
    data_only: bool = False
    base_url: str = ""  # empty: Apple's host for `sandbox`

    @property
    def url(self) -> str:
        return (self.base_url or (SANDBOX if self.sandbox else PRODUCTION)).rstrip("/")


def device_token(pushkey: str) -> str | None:
    """The hex device token APNs wants, from a hex or base64 pushkey (None: neither)."""
    if _HEX.fullmatch(pushkey):
        return pushkey.lower()
    try:
        return base64.b64decode(pushkey, validate=True).hex() or None
    except (binascii.Error, ValueError):
        return None


class ApnsSender:
    def __init__(
        self,
        settings: ApnsSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._key = settings.key_file.read_text(encoding="utf-8")
        self._client = client
        self._clock = clock
        self._token: str | None = None
        self._issued_at = 0.0

    def provider_token(self, *, renew: bool = False) -> str:
        now = self._clock()
        if self._token is None or renew or now - self._issued_at >= RENEW_AFTER_SECONDS:
            self._issued_at = now
            self._token = jwt.encode(
                {"iss": self._settings.team_id, "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self._settings.key_id},
            )
        return self._token

    def request(self, push: Push) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers (less authorization) and body of one push."""
        shown = push.visible(self._settings.data_only)
        aps: dict[str, Any] = {}
        if push.unread is not None:
            aps["badge"] = push.unread
        if push.badge_only and not self._settings.data_only:
            # A badge is a user-visible change: an alert push, which may wait (Apple's
            # background type is for waking the app, with nothing but content-available).
            push_type, priority = "alert", "5"
        elif shown is not None:
            title, body = shown
            aps["alert"] = {"title": title, "body": body}
            sound = push.tweaks.get("sound")
            if isinstance(sound, str):
                aps["sound"] = sound
            push_type, priority = "alert", "10" if push.high_priority else "5"
        else:
            aps["content-available"] = 1
            push_type, priority = "background", "5"
        headers = {
            "apns-topic": self._settings.topic,
            "apns-push-type": push_type,
            "apns-priority": priority,
        }
        room_id = push.notification.get("room_id")
        if isinstance(room_id, str) and len(room_id.encode()) <= MAX_COLLAPSE_ID_BYTES:
            headers["apns-collapse-id"] = room_id
        return headers, {"aps": aps, **push.data()}

    async def send(self, push: Push) -> Delivered:
        token = device_token(push.pushkey)
        if token is None:
            return Delivered.REJECTED
        headers, body = self.request(push)
        url = f"{self._settings.url}/3/device/{token}"
        content = json.dumps(body).encode()
        try:
            reply = await self._post(url, headers, content, renew=False)
            if reply.status_code == 403 and _reason(reply) == "ExpiredProviderToken":
                reply = await self._post(url, headers, content, renew=True)
        except httpx.HTTPError as error:
            log.warning("apns: %r", error)
            return Delivered.TEMPORARY
        if reply.status_code == 200:
            return Delivered.SENT
        reason = _reason(reply)
        if reply.status_code == 410 or reason in DEAD_TOKEN_REASONS:
            return Delivered.REJECTED
        if reply.status_code == 429 or reply.status_code >= 500:
            return Delivered.TEMPORARY
        log.warning("apns: push refused: %d %s", reply.status_code, reason)
        return Delivered.FAILED

    async def _post(
        self, url: str, headers: dict[str, str], content: bytes, *, renew: bool
    ) -> httpx.Response:
        authorization = f"bearer {self.provider_token(renew=renew)}"
        return await self._client.post(
            url, content=content, headers={**headers, "authorization": authorization}
        )


def _reason(reply: httpx.Response) -> str | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None
