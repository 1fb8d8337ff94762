"""Spec: "Account registration and management" (POST /register, GET /register/available)
and "User-Interactive Authentication API"."""

from __future__ import annotations

import asyncio
import re

import pytest

from sytest_lite.client import DEFAULT_PASSWORD, Api, assert_error, fresh_username, localpart

INVALID_USERNAMES = [
    "with space",
    "semi;colon",
    "colon:in:it",
    "at@sign",
    "hash#tag",
    "caf\u00e9",  # non-ASCII
    "a" * 300,  # user IDs are at most 255 bytes
]


async def test_register_without_auth_returns_uia_flows_with_dummy_stage_and_session(
    api: Api,
) -> None:
    status, body = await api.request(
        "POST", "/register", json={"username": fresh_username(), "password": DEFAULT_PASSWORD}
    )
    assert status == 401, body
    flows = body["flows"]
    assert isinstance(flows, list) and flows, body
    assert all(isinstance(flow["stages"], list) for flow in flows), body
    assert any("m.login.dummy" in flow["stages"] for flow in flows), body
    assert isinstance(body["session"], str) and body["session"], body
    assert isinstance(body.get("params", {}), dict), body


async def test_register_with_dummy_auth_returns_user_id_token_and_device(api: Api) -> None:
    username = fresh_username()
    request = {"username": username, "password": DEFAULT_PASSWORD}
    _, challenge = await api.request("POST", "/register", json=request)
    status, body = await api.request(
        "POST",
        "/register",
        json={**request, "auth": {"type": "m.login.dummy", "session": challenge["session"]}},
    )
    assert status == 200, body
    assert body["user_id"] == f"@{username}:localhost", body
    assert isinstance(body["access_token"], str) and body["access_token"], body
    assert isinstance(body["device_id"], str) and body["device_id"], body

    status, whoami = await api.request("GET", "/account/whoami", token=body["access_token"])
    assert status == 200, whoami
    assert whoami["user_id"] == body["user_id"], whoami
    assert whoami.get("device_id") == body["device_id"], whoami


async def test_register_honours_requested_device_id_and_display_name(api: Api) -> None:
    _, token, device_id = await api.register_user(
        device_id="MYPHONE", initial_device_display_name="Jungle Phone"
    )
    assert device_id == "MYPHONE"
    status, device = await api.request("GET", "/devices/MYPHONE", token=token)
    assert status == 200, device
    assert device["device_id"] == "MYPHONE", device
    assert device.get("display_name") == "Jungle Phone", device


async def test_register_without_username_generates_a_user_id(api: Api) -> None:
    status, challenge = await api.request("POST", "/register", json={"password": DEFAULT_PASSWORD})
    assert status == 401, challenge
    status, body = await api.request(
        "POST",
        "/register",
        json={
            "password": DEFAULT_PASSWORD,
            "auth": {"type": "m.login.dummy", "session": challenge["session"]},
        },
    )
    assert status == 200, body
    user_id = body["user_id"]
    assert user_id.startswith("@") and user_id.endswith(":localhost"), body
    assert re.fullmatch(r"[a-z0-9._=\-/+]+", localpart(user_id)), body


async def test_register_taken_username_is_user_in_use_before_auth(api: Api) -> None:
    # "Homeservers MUST perform the relevant checks and return these codes
    # before performing User-Interactive Authentication".
    user_id, _, _ = await api.register_user()
    username = localpart(user_id)
    status, body = await api.request(
        "POST", "/register", json={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert_error(status, body, 400, "M_USER_IN_USE")


async def test_register_taken_username_is_user_in_use_with_auth(api: Api) -> None:
    username = fresh_username()
    request = {"username": username, "password": DEFAULT_PASSWORD}
    _, first = await api.request("POST", "/register", json=request)
    _, second = await api.request("POST", "/register", json=request)
    # Both sessions were opened while the name was free; the second one loses.
    status, body = await api.request(
        "POST",
        "/register",
        json={**request, "auth": {"type": "m.login.dummy", "session": first["session"]}},
    )
    assert status == 200, body
    status, body = await api.request(
        "POST",
        "/register",
        json={**request, "auth": {"type": "m.login.dummy", "session": second["session"]}},
    )
    assert_error(status, body, 400, "M_USER_IN_USE")


@pytest.mark.parametrize("username", INVALID_USERNAMES)
async def test_register_invalid_username_is_rejected_before_auth(api: Api, username: str) -> None:
    status, body = await api.request(
        "POST", "/register", json={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert_error(status, body, 400, "M_INVALID_USERNAME")


async def test_register_lowers_capitals_in_the_username(api: Api) -> None:
    # Synapse lowers a requested username rather than refusing it.
    username = fresh_username()
    status, body = await api.request(
        "POST",
        "/register",
        json={
            "username": username.upper(),
            "password": DEFAULT_PASSWORD,
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200, body
    assert body["user_id"].startswith(f"@{username.lower()}:")


async def test_username_available_for_a_free_name(api: Api) -> None:
    status, body = await api.request(
        "GET", "/register/available", params={"username": fresh_username()}
    )
    assert status == 200, body
    assert body == {"available": True}, body


async def test_username_available_for_a_taken_name_is_user_in_use(api: Api) -> None:
    user_id, _, _ = await api.register_user()
    status, body = await api.request(
        "GET", "/register/available", params={"username": localpart(user_id)}
    )
    assert_error(status, body, 400, "M_USER_IN_USE")


@pytest.mark.parametrize("username", INVALID_USERNAMES)
async def test_username_available_for_an_invalid_name_is_invalid_username(
    api: Api, username: str
) -> None:
    status, body = await api.request("GET", "/register/available", params={"username": username})
    assert_error(status, body, 400, "M_INVALID_USERNAME")


async def test_register_with_inhibit_login_returns_no_token_and_user_can_log_in(
    api: Api,
) -> None:
    username = fresh_username()
    request = {"username": username, "password": DEFAULT_PASSWORD, "inhibit_login": True}
    _, challenge = await api.request("POST", "/register", json=request)
    status, body = await api.request(
        "POST",
        "/register",
        json={**request, "auth": {"type": "m.login.dummy", "session": challenge["session"]}},
    )
    assert status == 200, body
    assert body["user_id"] == f"@{username}:localhost", body
    assert "access_token" not in body, body
    assert "device_id" not in body, body

    status, login = await api.login(username)
    assert status == 200, login
    assert login["user_id"] == f"@{username}:localhost", login


async def test_registered_password_works_for_login(api: Api) -> None:
    user_id, _, _ = await api.register_user(password="s3cret-passw0rd")
    status, body = await api.login(user_id, "s3cret-passw0rd")
    assert status == 200, body
    assert body["user_id"] == user_id, body


async def test_concurrent_registrations_of_one_name_yield_exactly_one_account(api: Api) -> None:
    username = fresh_username()
    request = {"username": username, "password": DEFAULT_PASSWORD}
    challenges = await asyncio.gather(
        *(api.request("POST", "/register", json=request) for _ in range(6))
    )
    results = await asyncio.gather(
        *(
            api.request(
                "POST",
                "/register",
                json={**request, "auth": {"type": "m.login.dummy", "session": c["session"]}},
            )
            for _, c in challenges
        )
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * 5, results
    assert all(b["errcode"] == "M_USER_IN_USE" for s, b in results if s == 400), results


async def test_guest_registration_is_either_supported_or_forbidden(api: Api) -> None:
    # Guest accounts "may not be supported by all servers"; a server that does
    # not support them answers 403, without any UIA. The spec's example errcode
    # is M_FORBIDDEN; M_GUEST_ACCESS_FORBIDDEN names the same refusal.
    status, body = await api.request("POST", "/register", json={}, params={"kind": "guest"})
    if status == 200:
        assert body["user_id"].startswith("@") and body["access_token"], body
    else:
        assert status == 403, (status, body)
        assert body.get("errcode") in ("M_FORBIDDEN", "M_GUEST_ACCESS_FORBIDDEN"), body
