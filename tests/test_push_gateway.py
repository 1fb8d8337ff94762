"""The built-in Push Gateway, against local FCM and APNs servers that speak their protocols."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from homeserver.config import Push as PushConfig
from homeserver.push.gateway.apns import ApnsSender, ApnsSettings
from homeserver.push.gateway.fcm import REFRESH_BEFORE_SECONDS, FcmSender, FcmSettings
from homeserver.push.gateway.outcome import Delivered, Push
from tests.conftest import AppFactory
from tests.matrix import MatrixClient
from tests.processes import ServerProcess
from tests.push_gateway import NOTIFY
from tests.push_providers import FCM_SCOPE, FakeApns, FakeFcm, make_apns_key, make_service_account
from tests.test_push_sending import pusher_body

FCM_APP = "com.example.linkchat.android"
APNS_APP = "com.example.linkchat.ios"
TOPIC = "com.example.linkchat"


@dataclass
class Providers:
    fcm: FakeFcm
    apns: FakeApns
    apps: dict[str, Any]  # push.apps for the gateway's configuration


@pytest.fixture
async def providers(tmp_path: Path) -> AsyncIterator[Providers]:
    fcm, apns = FakeFcm("linkchat-test"), FakeApns("TEAM123456", "KEY1234567")
    await fcm.start()
    await apns.start()
    fcm.public_key = make_service_account(tmp_path / "fcm.json", fcm.token_url)
    apns.public_key = make_apns_key(tmp_path / "apns.p8")
    apps = {
        FCM_APP: {
            "kind": "fcm",
            "project_id": "linkchat-test",
            "service_account_file": str(tmp_path / "fcm.json"),
            "base_url": fcm.base_url,
        },
        APNS_APP: {
            "kind": "apns",
            "team_id": apns.team_id,
            "key_id": apns.key_id,
            "key_file": str(tmp_path / "apns.p8"),
            "topic": TOPIC,
            "base_url": apns.base_url,
        },
    }
    yield Providers(fcm, apns, apps)
    await fcm.stop()
    await apns.stop()


def _notification(devices: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "notification": {
            "event_id": "$ev",
            "room_id": "!room:localhost",
            "type": "m.room.message",
            "sender": "@alice:localhost",
            "sender_display_name": "Alice",
            "room_name": "Tea",
            "prio": "high",
            "content": {"msgtype": "m.text", "body": "hello"},
            "counts": {"unread": 3},
            "devices": devices,
            **fields,
        }
    }


def _device(app_id: str, pushkey: str, **tweaks: Any) -> dict[str, Any]:
    return {"app_id": app_id, "pushkey": pushkey, "data": {}, "tweaks": tweaks}


async def _gateway(start_app: AppFactory, providers: Providers, **apps: Any) -> MatrixClient:
    merged = {name: {**app, **apps.get(name, {})} for name, app in providers.apps.items()}
    return await start_app(push={"apps": _as_config(merged)})


def _as_config(apps: dict[str, Any]) -> dict[str, Any]:
    return dict(PushConfig.model_validate({"apps": apps}).apps)


async def test_fcm_gets_a_data_message_and_a_visible_notification(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    body = _notification([_device(FCM_APP, "fcm-token-1", sound="default")])
    reply = await hs.ok("POST", NOTIFY, body)
    assert reply == {"rejected": []}
    (message,) = providers.fcm.messages
    assert message == {
        "token": "fcm-token-1",
        "data": {
            "event_id": "$ev",
            "room_id": "!room:localhost",
            "type": "m.room.message",
            "sender": "@alice:localhost",
            "prio": "high",
            "unread_count": "3",
        },
        "android": {"priority": "high", "notification": {"tag": "!room:localhost"}},
        "notification": {"title": "Alice (Tea)", "body": "hello"},
    }
    # The OAuth2 grant: a JWT from the service account, for the messaging scope.
    (claims,) = providers.fcm.assertions
    assert claims["iss"] == "push@linkchat-test.iam.gserviceaccount.com"
    assert claims["scope"] == FCM_SCOPE
    assert claims["aud"] == providers.fcm.token_url
    assert claims["exp"] - claims["iat"] == 3600


async def test_fcm_data_only_for_encrypted_rooms_and_when_the_app_asks(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    encrypted = _notification(
        [_device(FCM_APP, "t1")], type="m.room.encrypted", content={"ciphertext": "x"}
    )
    await hs.ok("POST", NOTIFY, encrypted)
    # A device command wakes the agent: high priority, data only (our default rule).
    command = _notification(
        [_device(FCM_APP, "t2", **{"com.linkchat.data_only": True})], prio="high"
    )
    await hs.ok("POST", NOTIFY, command)
    low = _notification([_device(FCM_APP, "t3")], prio="low")
    await hs.ok("POST", NOTIFY, low)
    first, second, third = providers.fcm.messages
    assert "notification" not in first and first["data"]["type"] == "m.room.encrypted"
    assert "notification" not in second and second["android"]["priority"] == "high"
    assert third["android"]["priority"] == "normal" and "notification" in third
    data_only = await _gateway(start_app, providers, **{FCM_APP: {"data_only": True}})
    await data_only.ok("POST", NOTIFY, _notification([_device(FCM_APP, "t4")]))
    assert "notification" not in providers.fcm.messages[-1]


async def test_the_fcm_access_token_is_reused_and_renewed_when_refused(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    for n in range(3):
        await hs.ok("POST", NOTIFY, _notification([_device(FCM_APP, f"t{n}")]))
    assert len(providers.fcm.assertions) == 1
    providers.fcm.revoke_tokens()  # as when it expired early: FCM answers 401
    assert await hs.ok("POST", NOTIFY, _notification([_device(FCM_APP, "t9")])) == {"rejected": []}
    assert len(providers.fcm.assertions) == 2
    assert len(providers.fcm.messages) == 4


class _Clock:
    """A clock that starts `behind` seconds ago and moves when told (the local providers
    check the JWTs against the real time: none may be dated in the future)."""

    def __init__(self, behind: float) -> None:
        self.now = time.time() - behind

    def __call__(self) -> float:
        return self.now


async def test_the_fcm_access_token_is_renewed_before_it_expires(
    tmp_path: Path, providers: Providers
) -> None:
    clock = _Clock(behind=3500)
    settings = FcmSettings("linkchat-test", tmp_path / "fcm.json", base_url=providers.fcm.base_url)
    async with httpx.AsyncClient(http2=True) as client:
        sender = FcmSender(settings, client, clock=clock)
        push = Push(_notification([])["notification"], _device(FCM_APP, "t"))
        assert await sender.send(push) is Delivered.SENT
        clock.now += 3599 - REFRESH_BEFORE_SECONDS - 60  # FCM's token lasts 3599 s
        assert await sender.send(push) is Delivered.SENT
        assert len(providers.fcm.assertions) == 1
        clock.now += 120  # less than REFRESH_BEFORE_SECONDS left: renewed beforehand
        assert await sender.send(push) is Delivered.SENT
        assert len(providers.fcm.assertions) == 2
        assert providers.fcm.assertions[1]["iat"] == int(clock.now)
        assert len(providers.fcm.messages) == 3


async def test_the_apns_provider_token_is_renewed_after_50_minutes_not_sooner(
    tmp_path: Path, providers: Providers
) -> None:
    """Apple refuses a token renewed within 20 minutes and one older than an hour."""
    clock = _Clock(behind=55 * 60)
    settings = ApnsSettings(
        providers.apns.team_id,
        providers.apns.key_id,
        tmp_path / "apns.p8",
        TOPIC,
        base_url=providers.apns.base_url,
    )
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        sender = ApnsSender(settings, client, clock=clock)
        push = Push(_notification([])["notification"], _device(APNS_APP, secrets.token_hex(32)))
        for step in (0, 20 * 60, 29 * 60):  # up to 49 minutes after the first
            clock.now += step
            assert await sender.send(push) is Delivered.SENT
        clock.now += 2 * 60  # 51 minutes after the first
        assert await sender.send(push) is Delivered.SENT
    issued = [request["claims"]["iat"] for request in providers.apns.requests]
    assert issued[:3] == [issued[0]] * 3
    assert issued[3] == int(clock.now) and issued[3] - issued[0] == 51 * 60


async def test_apns_gets_an_alert_with_badge_and_headers_over_http2(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    token = secrets.token_bytes(32)
    # The spec's recommended pushkey: the APNs token, base64.
    pushkey = base64.b64encode(token).decode()
    body = _notification([_device(APNS_APP, pushkey, sound="default")])
    assert await hs.ok("POST", NOTIFY, body) == {"rejected": []}
    (request,) = providers.apns.requests
    assert request["path"] == f"/3/device/{token.hex()}"
    headers = request["headers"]
    assert headers[":method"] == "POST"
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "!room:localhost"
    assert request["body"] == {
        "aps": {"alert": {"title": "Alice (Tea)", "body": "hello"}, "badge": 3, "sound": "default"},
        "event_id": "$ev",
        "room_id": "!room:localhost",
        "type": "m.room.message",
        "sender": "@alice:localhost",
        "prio": "high",
        "unread_count": "3",
    }
    assert request["claims"]["iss"] == providers.apns.team_id


async def test_apns_background_push_and_one_provider_token_reused(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    device = secrets.token_hex(32)
    encrypted = _notification(
        [_device(APNS_APP, device)], type="m.room.encrypted", content={"ciphertext": "x"}
    )
    await hs.ok("POST", NOTIFY, encrypted)
    await hs.ok("POST", NOTIFY, _notification([_device(APNS_APP, device)]))
    first, second = providers.apns.requests
    assert first["headers"]["apns-push-type"] == "background"
    assert first["headers"]["apns-priority"] == "5"
    assert first["body"]["aps"] == {"content-available": 1, "badge": 3}
    # The provider token is reused until it must be renewed.
    assert first["headers"]["authorization"] == second["headers"]["authorization"]
    # One HTTP/2 connection carries both.
    assert providers.apns.connections == 1


async def test_a_badge_alone_is_a_silent_count_for_fcm_and_apns(
    start_app: AppFactory, providers: Providers
) -> None:
    """What the homeserver sends when the user read a room elsewhere: no event, a count."""
    hs = await _gateway(start_app, providers)
    device = secrets.token_hex(32)
    badge = {
        "notification": {
            "counts": {"unread": 0},
            "prio": "low",
            "devices": [_device(FCM_APP, "fcm-badge"), _device(APNS_APP, device)],
        }
    }
    assert await hs.ok("POST", NOTIFY, badge) == {"rejected": []}
    (message,) = providers.fcm.messages
    assert message == {
        "token": "fcm-badge",
        "data": {"prio": "low", "unread_count": "0"},
        "android": {"priority": "normal"},
    }
    (request,) = providers.apns.requests
    assert request["headers"]["apns-push-type"] == "alert"
    assert request["headers"]["apns-priority"] == "5"
    assert "apns-collapse-id" not in request["headers"]
    assert request["body"] == {"aps": {"badge": 0}, "prio": "low", "unread_count": "0"}


async def test_dead_tokens_and_unknown_apps_are_rejected(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    dead_apple = secrets.token_hex(32)
    providers.apns.dead.add(dead_apple)
    providers.fcm.dead.add("dead-fcm")
    devices = [
        _device(FCM_APP, "dead-fcm"),
        _device(FCM_APP, "alive-fcm"),
        _device(APNS_APP, dead_apple),
        _device(APNS_APP, "not a token!"),
        _device("com.unknown.app", "whatever"),
    ]
    reply = await hs.ok("POST", NOTIFY, _notification(devices))
    assert sorted(reply["rejected"]) == sorted(["dead-fcm", dead_apple, "not a token!", "whatever"])


async def test_a_provider_that_is_down_makes_the_homeserver_retry(
    start_app: AppFactory, providers: Providers
) -> None:
    hs = await _gateway(start_app, providers)
    providers.fcm.down = True
    reply = await hs.request("POST", NOTIFY, _notification([_device(FCM_APP, "t")]))
    assert reply.status == 502
    bad = await hs.request("POST", NOTIFY, {"notification": {"devices": "no"}})
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")


async def test_the_whole_path_from_a_message_to_fcm_and_apns_through_a_gateway_process(
    hs: MatrixClient, providers: Providers, tmp_path: Path, fresh_dsn: str
) -> None:
    gateway = ServerProcess(tmp_path, fresh_dsn, push={"apps": providers.apps})
    await asyncio.to_thread(gateway.wait_ready)
    try:
        url = gateway.base_url + NOTIFY
        alice, bob, room = await hs.room_of_two()
        await hs.ok(
            "PUT", f"profile/{alice.user_id}/displayname", {"displayname": "Alice"}, user=alice
        )
        android = {**pusher_body(url, "bob-android"), "app_id": FCM_APP}
        apple_token = secrets.token_hex(32)
        iphone = {**pusher_body(url, apple_token), "app_id": APNS_APP}
        await hs.ok("POST", "pushers/set", android, user=bob)
        await hs.ok("POST", "pushers/set", iphone, user=bob)
        event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "ring ring"})
        await _until(lambda: providers.fcm.messages and providers.apns.requests)
        (message,) = providers.fcm.messages
        assert message["token"] == "bob-android"
        assert message["data"]["event_id"] == event_id
        assert message["data"]["room_id"] == room
        assert message["data"]["unread_count"] == "1"
        assert message["notification"] == {"title": "Alice", "body": "ring ring"}
        (request,) = providers.apns.requests
        assert request["path"] == f"/3/device/{apple_token}"
        assert request["body"]["aps"]["alert"] == {"title": "Alice", "body": "ring ring"}
        assert request["body"]["aps"]["badge"] == 1
        assert request["body"]["event_id"] == event_id
        # FCM says the Android app was uninstalled: the pusher goes.
        providers.fcm.dead.add("bob-android")
        await hs.send(alice, room, {"msgtype": "m.text", "body": "again"})

        async def android_gone() -> bool:
            pushers = (await hs.ok("GET", "pushers", user=bob))["pushers"]
            return [p["pushkey"] for p in pushers] == [apple_token]

        for _ in range(300):
            if await android_gone():
                break
            await asyncio.sleep(0.1)
        assert await android_gone()
    finally:
        await asyncio.to_thread(gateway.stop)


async def _until(condition: Any, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")
