"""Spec: "Client Authentication" (access tokens, /login, /logout, /logout/all,
/account/whoami) and POST /account/password."""

from __future__ import annotations

from sytest_lite.client import (
    DEFAULT_PASSWORD,
    Api,
    Registered,
    assert_error,
    fresh_username,
    localpart,
    password_auth,
    q,
)


async def _whoami(api: Api, token: str) -> tuple[int, dict[str, object]]:
    return await api.request("GET", "/account/whoami", token=token)


async def test_login_flows_include_password(api: Api) -> None:
    status, body = await api.request("GET", "/login")
    assert status == 200, body
    types = [flow["type"] for flow in body["flows"]]
    assert "m.login.password" in types, body


async def test_login_with_user_identifier_localpart(api: Api, alice: Registered) -> None:
    status, body = await api.login(localpart(alice.user_id))
    assert status == 200, body
    assert body["user_id"] == alice.user_id, body
    assert isinstance(body["access_token"], str) and body["access_token"], body
    assert isinstance(body["device_id"], str) and body["device_id"], body
    status, whoami = await _whoami(api, body["access_token"])
    assert status == 200 and whoami["user_id"] == alice.user_id, whoami


async def test_login_with_user_identifier_full_user_id(api: Api, alice: Registered) -> None:
    status, body = await api.login(alice.user_id)
    assert status == 200, body
    assert body["user_id"] == alice.user_id, body


async def test_login_with_legacy_user_field(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "POST",
        "/login",
        json={
            "type": "m.login.password",
            "user": localpart(alice.user_id),
            "password": DEFAULT_PASSWORD,
        },
    )
    assert status == 200, body
    assert body["user_id"] == alice.user_id, body


async def test_login_with_requested_device_id_uses_it(api: Api, alice: Registered) -> None:
    status, body = await api.login(alice.user_id, device_id="LAPTOP01")
    assert status == 200, body
    assert body["device_id"] == "LAPTOP01", body
    status, whoami = await _whoami(api, body["access_token"])
    assert status == 200 and whoami.get("device_id") == "LAPTOP01", whoami


async def test_login_reusing_a_device_id_invalidates_that_devices_old_token(
    api: Api, alice: Registered
) -> None:
    # "If the client sets the device_id, the server will invalidate any access
    # and refresh tokens previously assigned to that device."
    status, body = await api.login(alice.user_id, device_id=alice.device_id)
    assert status == 200, body
    assert body["device_id"] == alice.device_id, body
    status, old = await _whoami(api, alice.access_token)
    assert_error(status, old, 401, "M_UNKNOWN_TOKEN")
    status, new = await _whoami(api, body["access_token"])
    assert status == 200 and new.get("device_id") == alice.device_id, new
    status, devices = await api.request("GET", "/devices", token=body["access_token"])
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id], devices


async def test_login_sets_initial_device_display_name(api: Api, alice: Registered) -> None:
    status, body = await api.login(alice.user_id, initial_device_display_name="Work laptop")
    assert status == 200, body
    status, device = await api.request(
        "GET", f"/devices/{q(body['device_id'])}", token=body["access_token"]
    )
    assert status == 200, device
    assert device.get("display_name") == "Work laptop", device


async def test_each_login_gets_its_own_device_and_token(api: Api, alice: Registered) -> None:
    first = await api.login_ok(alice.user_id)
    second = await api.login_ok(alice.user_id)
    assert first.access_token != second.access_token
    assert first.device_id != second.device_id
    assert alice.device_id not in (first.device_id, second.device_id)


async def test_login_with_wrong_password_is_forbidden(api: Api, alice: Registered) -> None:
    status, body = await api.login(alice.user_id, "not the password")
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_login_for_unknown_user_is_forbidden(api: Api) -> None:
    status, body = await api.login(fresh_username("nobody"))
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_login_with_unsupported_type_is_rejected(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "POST", "/login", json={"type": "m.login.carrier_pigeon", "user": alice.user_id}
    )
    assert status == 400, body
    assert isinstance(body.get("errcode"), str), body


async def test_whoami_returns_user_and_device(api: Api, alice: Registered) -> None:
    status, body = await _whoami(api, alice.access_token)
    assert status == 200, body
    assert body["user_id"] == alice.user_id, body
    assert body.get("device_id") == alice.device_id, body
    assert body.get("is_guest", False) is False, body


async def test_request_without_token_is_missing_token(api: Api) -> None:
    status, body = await api.request("GET", "/account/whoami")
    assert_error(status, body, 401, "M_MISSING_TOKEN")


async def test_request_with_unknown_token_is_unknown_token(api: Api) -> None:
    status, body = await _whoami(api, "syt_not_a_real_token")
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")


async def test_token_is_accepted_as_access_token_query_parameter(
    api: Api, alice: Registered
) -> None:
    status, body = await api.request(
        "GET", "/account/whoami", params={"access_token": alice.access_token}
    )
    assert status == 200, body
    assert body["user_id"] == alice.user_id, body


async def test_logout_invalidates_only_that_token(api: Api, alice: Registered) -> None:
    other = await api.login_ok(alice.user_id)
    status, body = await api.request("POST", "/logout", json={}, token=alice.access_token)
    assert status == 200, body
    status, body = await _whoami(api, alice.access_token)
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
    status, body = await _whoami(api, other.access_token)
    assert status == 200, body


async def test_logout_removes_the_device(api: Api, alice: Registered) -> None:
    other = await api.login_ok(alice.user_id)
    status, body = await api.request("POST", "/logout", json={}, token=other.access_token)
    assert status == 200, body
    status, body = await api.request("GET", "/devices", token=alice.access_token)
    assert status == 200, body
    assert other.device_id not in [d["device_id"] for d in body["devices"]], body


async def test_logout_all_invalidates_every_token(api: Api, alice: Registered) -> None:
    other = await api.login_ok(alice.user_id)
    status, body = await api.request("POST", "/logout/all", json={}, token=other.access_token)
    assert status == 200, body
    for token in (alice.access_token, other.access_token):
        status, body = await _whoami(api, token)
        assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
    # The account itself survives: logging in again works.
    await api.login_ok(alice.user_id)


async def _change_password(
    api: Api, who: Registered, new_password: str, **extra: object
) -> tuple[int, dict[str, object]]:
    status, challenge = await api.request(
        "POST",
        "/account/password",
        json={"new_password": new_password, **extra},
        token=who.access_token,
    )
    assert status == 401, challenge
    assert any("m.login.password" in f["stages"] for f in challenge["flows"]), challenge
    return await api.request(
        "POST",
        "/account/password",
        json={
            "new_password": new_password,
            "auth": password_auth(who.user_id, DEFAULT_PASSWORD, challenge.get("session")),
            **extra,
        },
        token=who.access_token,
    )


async def test_password_change_then_login_with_new_password(api: Api, alice: Registered) -> None:
    status, body = await _change_password(api, alice, "brand new password")
    assert status == 200, body
    status, body = await api.login(alice.user_id, DEFAULT_PASSWORD)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await api.login(alice.user_id, "brand new password")
    assert status == 200, body


async def test_password_change_keeps_requesting_token_and_logs_out_others_by_default(
    api: Api, alice: Registered
) -> None:
    other = await api.login_ok(alice.user_id)
    status, body = await _change_password(api, alice, "another new password")
    assert status == 200, body
    # logout_devices defaults to true; the requesting token SHOULD NOT be revoked.
    status, body = await _whoami(api, other.access_token)
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
    status, body = await _whoami(api, alice.access_token)
    assert status == 200, body


async def test_password_change_with_logout_devices_false_keeps_other_tokens(
    api: Api, alice: Registered
) -> None:
    other = await api.login_ok(alice.user_id)
    status, body = await _change_password(api, alice, "yet another password", logout_devices=False)
    assert status == 200, body
    status, body = await _whoami(api, other.access_token)
    assert status == 200, body


async def test_password_change_with_wrong_current_password_is_refused(
    api: Api, alice: Registered
) -> None:
    status, challenge = await api.request(
        "POST", "/account/password", json={"new_password": "x-new"}, token=alice.access_token
    )
    assert status == 401, challenge
    status, body = await api.request(
        "POST",
        "/account/password",
        json={
            "new_password": "x-new",
            "auth": password_auth(alice.user_id, "wrong password", challenge.get("session")),
        },
        token=alice.access_token,
    )
    assert_error(status, body, 401, "M_FORBIDDEN")
    status, body = await api.login(alice.user_id, DEFAULT_PASSWORD)
    assert status == 200, body
