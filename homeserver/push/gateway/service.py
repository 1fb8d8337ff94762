"""The built-in Push Gateway (the Push Gateway API): POST /_matrix/push/v1/notify.

A homeserver (this one, or any other) POSTs a notification with its devices;
each device names an app ID, which this gateway knows from the configuration
(`push.apps`) as an FCM or an APNs app, and a pushkey (the provider's token).
The answer lists the pushkeys that are dead (`rejected`): those of an unknown
app ID, and those the provider called dead; the homeserver then removes those
pushers. When a provider cannot be reached (a timeout, a 5xx, a 429) the whole
request fails (`GatewayUnavailable`, answered 502) so the homeserver tries it
again later; devices already sent may then get it twice (the event ID lets an
app drop the second).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from homeserver.push.gateway.apns import ApnsSender, ApnsSettings
from homeserver.push.gateway.fcm import FcmSender, FcmSettings
from homeserver.push.gateway.outcome import Delivered, Push

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0


class GatewayUnavailable(Exception):
    """A provider could not take a push now: the caller should try again later."""


class BadNotification(ValueError):
    pass


class Sender(Protocol):
    async def send(self, push: Push) -> Delivered: ...


class PushGateway:
    def __init__(self, apps: Mapping[str, FcmSettings | ApnsSettings]) -> None:
        self._settings = dict(apps)
        self._senders: dict[str, Sender] = {}
        self._clients: list[httpx.AsyncClient] = []

    def start(self) -> None:
        """Read the apps' keys (a missing file stops the server here, naming it)."""
        for app_id, settings in self._settings.items():
            if isinstance(settings, FcmSettings):
                client = httpx.AsyncClient(http2=True, timeout=TIMEOUT_SECONDS)
                self._senders[app_id] = FcmSender(settings, client)
            else:
                # HTTP/2 only; over plain http (a local test server) with prior knowledge.
                client = httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT_SECONDS)
                self._senders[app_id] = ApnsSender(settings, client)
            self._clients.append(client)
            log.info("push gateway: app %s (%s)", app_id, type(settings).__name__)

    async def stop(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()

    async def notify(self, body: Mapping[str, Any]) -> list[str]:
        """Send one notification to its devices; the pushkeys rejected."""
        notification = body.get("notification")
        if not isinstance(notification, Mapping):
            raise BadNotification("notification: must be an object")
        devices = notification.get("devices")
        if not isinstance(devices, list) or not all(isinstance(d, Mapping) for d in devices):
            raise BadNotification("notification.devices: must be a list of objects")
        pushes = [Push(notification, device) for device in devices]
        outcomes = await asyncio.gather(*(self._send(push) for push in pushes))
        if any(outcome is Delivered.TEMPORARY for outcome in outcomes):
            raise GatewayUnavailable("a push provider is unavailable; try again later")
        return [
            push.pushkey
            for push, outcome in zip(pushes, outcomes, strict=True)
            if outcome is Delivered.REJECTED
        ]

    async def _send(self, push: Push) -> Delivered:
        app_id = push.device.get("app_id")
        sender = self._senders.get(app_id) if isinstance(app_id, str) else None
        if sender is None or not push.pushkey:
            return Delivered.REJECTED
        return await sender.send(push)
