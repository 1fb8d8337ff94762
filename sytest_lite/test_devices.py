"""Spec: "Device Management" (GET/PUT/DELETE /devices/{deviceId}, GET /devices,
POST /delete_devices) with User-Interactive Authentication."""

from __future__ import annotations

from sytest_lite.client import (
    DEFAULT_PASSWORD,
    Api,
    Registered,
    assert_error,
    password_auth,
    q,
)


async def _device_ids(api: Api, token: str) -> list[str]:
    status, body = await api.request("GET", "/devices", token=token)
    assert status == 200, body
    return [d["device_id"] for d in body["devices"]]


async def test_device_list_contains_the_registration_device(api: Api, alice: Registered) -> None:
    assert await _device_ids(api, alice.access_token) == [alice.device_id]


async def test_device_list_contains_every_logged_in_device(api: Api, alice: Registered) -> None:
    second = await api.login_ok(alice.user_id)
    assert sorted(await _device_ids(api, alice.access_token)) == sorted(
        [alice.device_id, second.device_id]
    )


async def test_get_device_returns_it(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "GET", f"/devices/{q(alice.device_id)}", token=alice.access_token
    )
    assert status == 200, body
    assert body["device_id"] == alice.device_id, body


async def test_unset_device_fields_are_absent_not_null(api: Api, alice: Registered) -> None:
    # client_device.yaml: display_name is a string, "Absent if no name has been set";
    # only device_id is required, and none of the fields is nullable.
    status, body = await api.request(
        "GET", f"/devices/{q(alice.device_id)}", token=alice.access_token
    )
    assert status == 200, body
    for field in ("display_name", "last_seen_ip"):
        assert field not in body or isinstance(body[field], str), body
    assert "last_seen_ts" not in body or isinstance(body["last_seen_ts"], int), body


async def test_rename_device_via_put(api: Api, alice: Registered) -> None:
    path = f"/devices/{q(alice.device_id)}"
    status, body = await api.request(
        "PUT", path, json={"display_name": "Kitchen tablet"}, token=alice.access_token
    )
    assert status == 200, body
    assert body == {}, body
    status, body = await api.request("GET", path, token=alice.access_token)
    assert status == 200, body
    assert body.get("display_name") == "Kitchen tablet", body


async def test_put_device_without_display_name_leaves_it_unchanged(
    api: Api, alice: Registered
) -> None:
    path = f"/devices/{q(alice.device_id)}"
    await api.request("PUT", path, json={"display_name": "Desk"}, token=alice.access_token)
    status, body = await api.request("PUT", path, json={}, token=alice.access_token)
    assert status == 200, body
    _, body = await api.request("GET", path, token=alice.access_token)
    assert body.get("display_name") == "Desk", body


async def test_get_unknown_device_is_not_found(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/devices/NOSUCHDEVICE", token=alice.access_token)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_put_unknown_device_is_not_found(api: Api, alice: Registered) -> None:
    status, body = await api.request(
        "PUT", "/devices/NOSUCHDEVICE", json={"display_name": "x"}, token=alice.access_token
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_another_users_device_is_not_found(
    api: Api, alice: Registered, bob: Registered
) -> None:
    status, body = await api.request(
        "GET", f"/devices/{q(bob.device_id)}", token=alice.access_token
    )
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_delete_device_without_auth_asks_for_password_stage(
    api: Api, alice: Registered
) -> None:
    second = await api.login_ok(alice.user_id)
    status, body = await api.request(
        "DELETE", f"/devices/{q(second.device_id)}", json={}, token=alice.access_token
    )
    assert status == 401, body
    assert any("m.login.password" in flow["stages"] for flow in body["flows"]), body
    assert isinstance(body["session"], str) and body["session"], body
    # Nothing was deleted yet.
    status, body = await api.request("GET", "/account/whoami", token=second.access_token)
    assert status == 200, body


async def test_delete_device_with_password_auth_removes_device_and_its_token(
    api: Api, alice: Registered
) -> None:
    second = await api.login_ok(alice.user_id)
    path = f"/devices/{q(second.device_id)}"
    _, challenge = await api.request("DELETE", path, json={}, token=alice.access_token)
    status, body = await api.request(
        "DELETE",
        path,
        json={"auth": password_auth(alice.user_id, DEFAULT_PASSWORD, challenge["session"])},
        token=alice.access_token,
    )
    assert status == 200, body
    assert second.device_id not in await _device_ids(api, alice.access_token)
    status, body = await api.request("GET", "/account/whoami", token=second.access_token)
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")
    status, body = await api.request("GET", path, token=alice.access_token)
    assert_error(status, body, 404, "M_NOT_FOUND")


async def test_delete_device_with_wrong_password_is_refused(api: Api, alice: Registered) -> None:
    second = await api.login_ok(alice.user_id)
    path = f"/devices/{q(second.device_id)}"
    _, challenge = await api.request("DELETE", path, json={}, token=alice.access_token)
    status, body = await api.request(
        "DELETE",
        path,
        json={"auth": password_auth(alice.user_id, "wrong password", challenge["session"])},
        token=alice.access_token,
    )
    # A failed stage: 401 with the flows again, plus errcode M_FORBIDDEN.
    assert_error(status, body, 401, "M_FORBIDDEN")
    assert "flows" in body, body
    assert second.device_id in await _device_ids(api, alice.access_token)


async def test_deleting_another_users_device_id_leaves_it_alone(
    api: Api, alice: Registered, bob: Registered
) -> None:
    path = f"/devices/{q(bob.device_id)}"
    _, challenge = await api.request("DELETE", path, json={}, token=alice.access_token)
    status, body = await api.request(
        "DELETE",
        path,
        json={"auth": password_auth(alice.user_id, DEFAULT_PASSWORD, challenge.get("session"))},
        token=alice.access_token,
    )
    # 200 ("had been removed previously") or 404 are both fair; deleting bob's device is not.
    assert status in (200, 404), body
    status, body = await api.request("GET", "/account/whoami", token=bob.access_token)
    assert status == 200, body


async def test_delete_own_current_device_logs_it_out(api: Api, alice: Registered) -> None:
    path = f"/devices/{q(alice.device_id)}"
    _, challenge = await api.request("DELETE", path, json={}, token=alice.access_token)
    status, body = await api.request(
        "DELETE",
        path,
        json={"auth": password_auth(alice.user_id, DEFAULT_PASSWORD, challenge["session"])},
        token=alice.access_token,
    )
    assert status == 200, body
    status, body = await api.request("GET", "/account/whoami", token=alice.access_token)
    assert_error(status, body, 401, "M_UNKNOWN_TOKEN")


async def test_bulk_delete_devices_with_password_auth(api: Api, alice: Registered) -> None:
    second = await api.login_ok(alice.user_id)
    third = await api.login_ok(alice.user_id)
    request = {"devices": [second.device_id, third.device_id]}
    status, challenge = await api.request(
        "POST", "/delete_devices", json=request, token=alice.access_token
    )
    assert status == 401, challenge
    status, body = await api.request(
        "POST",
        "/delete_devices",
        json={
            **request,
            "auth": password_auth(alice.user_id, DEFAULT_PASSWORD, challenge["session"]),
        },
        token=alice.access_token,
    )
    assert status == 200, body
    assert await _device_ids(api, alice.access_token) == [alice.device_id]
