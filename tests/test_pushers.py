"""Pushers: set, list, delete; each belongs to the access token that made it, and dies with it."""

from __future__ import annotations

from typing import Any

from tests.matrix import MatrixClient, User
from tests.test_push_sending import pusher_body

URL = "https://push.example.com/_matrix/push/v1/notify"


async def _login(hs: MatrixClient, user: User, device_id: str | None = None) -> User:
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    }
    if device_id:
        body["device_id"] = device_id
    reply = await hs.ok("POST", "login", body)
    return User(user.user_id, reply["access_token"], reply["device_id"], user.password)


async def _pushkeys(hs: MatrixClient, user: User) -> list[str]:
    return [p["pushkey"] for p in (await hs.ok("GET", "pushers", user=user))["pushers"]]


async def test_a_pusher_is_set_listed_replaced_and_deleted(hs: MatrixClient) -> None:
    user = await hs.register()
    body = pusher_body(URL, "k1", format="event_id_only")
    body["profile_tag"] = "tag"
    await hs.ok("POST", "pushers/set", body, user=user)
    (shown,) = (await hs.ok("GET", "pushers", user=user))["pushers"]
    assert shown == {
        "pushkey": "k1",
        "kind": "http",
        "app_id": "com.example.app.android",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "profile_tag": "tag",
        "lang": "en",
        "data": {"url": URL, "format": "event_id_only"},
    }
    await hs.ok("POST", "pushers/set", {**body, "lang": "fr"}, user=user)
    (shown,) = (await hs.ok("GET", "pushers", user=user))["pushers"]
    assert shown["lang"] == "fr"
    gone = {"kind": None, "app_id": body["app_id"], "pushkey": "k1"}
    await hs.ok("POST", "pushers/set", gone, user=user)
    assert await _pushkeys(hs, user) == []


async def test_append_decides_whether_other_users_keep_the_same_pushkey(hs: MatrixClient) -> None:
    first, second, third = await hs.register(), await hs.register(), await hs.register()
    await hs.ok("POST", "pushers/set", pusher_body(URL, "shared"), user=first)
    await hs.ok("POST", "pushers/set", {**pusher_body(URL, "shared"), "append": True}, user=second)
    assert await _pushkeys(hs, first) == ["shared"]
    await hs.ok("POST", "pushers/set", pusher_body(URL, "shared"), user=third)
    assert await _pushkeys(hs, first) == [] and await _pushkeys(hs, second) == []
    assert await _pushkeys(hs, third) == ["shared"]


async def test_bad_pushers_are_refused(hs: MatrixClient) -> None:
    user = await hs.register()
    good = pusher_body(URL, "k")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "http", "app_id": "a"}, "M_MISSING_PARAM"),
        ({k: v for k, v in good.items() if k not in ("lang", "data")}, "M_MISSING_PARAM"),
        ({**good, "kind": "email"}, "M_INVALID_PARAM"),
        ({**good, "data": {"url": "https://push.example.com/other"}}, "M_INVALID_PARAM"),
        ({**good, "data": {"url": "ftp://x/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
        ({**good, "data": {}}, "M_MISSING_PARAM"),
        ({**good, "data": {"url": URL, "format": "full"}}, "M_INVALID_PARAM"),
        ({**good, "pushkey": "k" * 513}, "M_INVALID_PARAM"),
        ({**good, "app_id": "a" * 65}, "M_INVALID_PARAM"),
        ({**good, "append": "yes"}, "M_INVALID_PARAM"),
        ({**good, "lang": 7}, "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        reply = await hs.request("POST", "pushers/set", body, user=user)
        assert (reply.status, reply.errcode) == (400, errcode), (body, reply.body)
    assert await _pushkeys(hs, user) == []


async def test_a_pusher_dies_with_its_token_on_logout(hs: MatrixClient) -> None:
    user = await hs.register()
    phone = await _login(hs, user)
    await hs.ok("POST", "pushers/set", pusher_body(URL, "phone"), user=phone)
    await hs.ok("POST", "pushers/set", pusher_body(URL, "first"), user=user)
    await hs.ok("POST", "logout", {}, user=phone)
    assert await _pushkeys(hs, user) == ["first"]
    await hs.ok("POST", "logout/all", {}, user=user)
    again = await _login(hs, user)
    assert await _pushkeys(hs, again) == []


async def test_a_pusher_dies_with_its_device(hs: MatrixClient) -> None:
    user = await hs.register()
    phone = await _login(hs, user)
    await hs.ok("POST", "pushers/set", pusher_body(URL, "phone"), user=phone)
    auth = {"type": "m.login.password", "user": user.user_id, "password": user.password}
    await hs.ok("DELETE", f"devices/{phone.device_id}", {"auth": auth}, user=user)
    assert await _pushkeys(hs, user) == []


async def test_a_password_change_that_logs_out_other_devices_ends_their_pushers(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    phone = await _login(hs, user)
    await hs.ok("POST", "pushers/set", pusher_body(URL, "phone"), user=phone)
    await hs.ok("POST", "pushers/set", pusher_body(URL, "mine"), user=user)
    auth = {"type": "m.login.password", "user": user.user_id, "password": user.password}
    await hs.ok(
        "POST",
        "account/password",
        {"new_password": "another horse", "logout_devices": True, "auth": auth},
        user=user,
    )
    assert await _pushkeys(hs, user) == ["mine"]
