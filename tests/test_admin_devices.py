"""Admin API: a user's devices, whois and password reset, as Synapse's User Admin API."""

from __future__ import annotations

from urllib.parse import quote

from tests.admin import SERVER_NAME, assert_admins_only, start_with_admin
from tests.conftest import AppFactory

USERS = "/_synapse/admin/v2/users/"
AUDIT = "/_linkchat/v1/admin/audit"


async def test_device_endpoints_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    target = quote(server.admin.user_id)
    await assert_admins_only(hs, user, "GET", f"{USERS}{target}/devices")
    await assert_admins_only(hs, user, "GET", f"{USERS}{target}/devices/X")
    await assert_admins_only(hs, user, "PUT", f"{USERS}{target}/devices/X", {"display_name": "a"})
    await assert_admins_only(hs, user, "DELETE", f"{USERS}{target}/devices/X")
    await assert_admins_only(hs, user, "POST", f"{USERS}{target}/delete_devices", {"devices": []})
    await assert_admins_only(hs, user, "GET", f"/_synapse/admin/v1/whois/{target}")
    await assert_admins_only(
        hs, user, "POST", f"/_synapse/admin/v1/reset_password/{target}", {"new_password": "x"}
    )


async def test_an_admin_lists_renames_and_deletes_a_users_devices(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    phone = await hs.login(bob, device_id="PHONE", initial_device_display_name="Phone")
    laptop = await hs.login(bob, device_id="LAPTOP")
    base = f"{USERS}{quote(bob.user_id)}/devices"

    listed = await hs.ok("GET", base, user=root)
    assert listed["total"] == 3
    by_id = {d["device_id"]: d for d in listed["devices"]}
    assert set(by_id) == {bob.device_id, "PHONE", "LAPTOP"}
    assert by_id["PHONE"]["display_name"] == "Phone" and "display_name" not in by_id["LAPTOP"]
    assert by_id["PHONE"]["user_id"] == bob.user_id
    assert isinstance(by_id["PHONE"]["last_seen_ts"], int)

    await hs.ok("PUT", f"{base}/LAPTOP", {"display_name": "Work laptop"}, user=root)
    assert (await hs.ok("GET", f"{base}/LAPTOP", user=root))["display_name"] == "Work laptop"
    own_view = await hs.ok("GET", "devices/LAPTOP", user=bob)
    assert own_view["display_name"] == "Work laptop"

    await hs.ok("DELETE", f"{base}/PHONE", user=root)
    gone = await hs.request("GET", "account/whoami", user=phone)
    assert (gone.status, gone.errcode) == (401, "M_UNKNOWN_TOKEN")
    missing = await hs.request("GET", f"{base}/PHONE", user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    await hs.ok("DELETE", f"{base}/PHONE", user=root)  # already gone: nothing to do

    await hs.ok(
        "POST",
        f"{USERS}{quote(bob.user_id)}/delete_devices",
        {"devices": ["LAPTOP", "NO_SUCH"], "reason": "lost"},
        user=root,
    )
    assert (await hs.request("GET", "account/whoami", user=laptop)).status == 401
    assert (await hs.request("GET", "account/whoami", user=bob)).status == 200
    assert (await hs.ok("GET", base, user=root))["total"] == 1

    trail = await hs.ok("GET", f"{AUDIT}?target={quote(bob.user_id)}&dir=f", user=root)
    assert [(a["action"], a.get("details")) for a in trail["actions"]] == [
        ("user.device.rename", {"device_id": "LAPTOP"}),
        ("user.device.delete", {"devices": ["PHONE"]}),
        ("user.device.delete", {"devices": ["LAPTOP"]}),
    ]
    assert trail["actions"][-1]["reason"] == "lost"

    unknown = await hs.request(
        "GET", f"{USERS}{quote('@ghost_d:' + SERVER_NAME)}/devices", user=root
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    remote = await hs.request("GET", f"{USERS}{quote('@a:elsewhere.org')}/devices", user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    bad = await hs.request("POST", f"{USERS}{quote(bob.user_id)}/delete_devices", {}, user=root)
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")


async def test_whois_shows_each_device(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    await hs.login(bob, device_id="SECOND")
    shown = await hs.ok("GET", f"/_synapse/admin/v1/whois/{quote(bob.user_id)}", user=root)
    assert shown["user_id"] == bob.user_id
    assert set(shown["devices"]) == {bob.device_id, "SECOND"}
    [session] = shown["devices"]["SECOND"]["sessions"]
    [connection] = session["connections"]
    assert isinstance(connection["last_seen"], int)
    # The spec's whois: an admin, or the user about themself; anyone else 403.
    client_path = f"admin/whois/{quote(bob.user_id)}"
    assert (await hs.ok("GET", client_path, user=bob))["user_id"] == bob.user_id
    assert (await hs.ok("GET", client_path, user=root))["user_id"] == bob.user_id
    other = await hs.register()
    refused = await hs.request("GET", client_path, user=other)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")


async def test_reset_password_logs_out_unless_asked_not_to(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    path = f"/_synapse/admin/v1/reset_password/{quote(bob.user_id)}"
    await hs.ok("POST", path, {"new_password": "kept in", "logout_devices": False}, user=root)
    assert (await hs.request("GET", "account/whoami", user=bob)).status == 200
    await hs.ok("POST", path, {"new_password": "all out", "reason": "ticket 7"}, user=root)
    assert (await hs.request("GET", "account/whoami", user=bob)).status == 401
    login = await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": bob.user_id},
            "password": "all out",
        },
    )
    assert login.status == 200
    trail = await hs.ok("GET", f"{AUDIT}?target={quote(bob.user_id)}", user=root)
    assert [(a["action"], a["details"]) for a in trail["actions"]] == [
        ("user.reset_password", {"logout_devices": True}),
        ("user.reset_password", {"logout_devices": False}),
    ]
    for body in ({}, {"new_password": 5}, {"new_password": "x" * 513}):
        bad = await hs.request("POST", path, body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_BAD_JSON"), body
