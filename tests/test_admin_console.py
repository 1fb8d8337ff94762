"""The admin API driven as synapse-admin drives it: the same requests, in the same order,
for its user pages (list, open one with its tabs, deactivate) and its reports list.
The room pages are left to the room admin endpoints' own tests."""

from __future__ import annotations

from urllib.parse import quote

from tests.admin import assert_admins_only, start_with_admin
from tests.conftest import AppFactory
from tests.test_media import upload_ok
from tests.test_push_sending import pusher_body

ADMIN = "/_synapse/admin"


async def test_user_pages_work_as_synapse_admin_asks(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    bob = await hs.register()
    room = await hs.create_room(bob, preset="public_chat")
    await upload_ok(hs, bob, b"a file", "text/plain", "notes.txt")
    await hs.ok(
        "POST",
        "pushers/set",
        pusher_body("https://push.example.com/_matrix/push/v1/notify", "bob-key"),
        user=bob,
    )
    user = quote(bob.user_id)

    # The login page, then the users list.
    assert "server_version" in await hs.ok("GET", f"{ADMIN}/v1/server_version")
    # The suite's other users share this database: search, as an operator would.
    localpart = bob.user_id[1:].split(":")[0]
    listed = await hs.ok(
        "GET",
        f"{ADMIN}/v2/users?from=0&limit=10&guests=false&deactivated=false&order_by=name&dir=f"
        f"&name={localpart}",
        user=root,
    )
    assert bob.user_id in [u["name"] for u in listed["users"]]
    assert isinstance(listed["total"], int)

    # Opening one user: the account, then each tab.
    shown = await hs.ok("GET", f"{ADMIN}/v2/users/{user}", user=root)
    assert (shown["name"], shown["deactivated"]) == (bob.user_id, False)
    devices = await hs.ok("GET", f"{ADMIN}/v2/users/{user}/devices", user=root)
    assert devices["total"] == 1
    connections = await hs.ok("GET", f"{ADMIN}/v1/whois/{user}", user=root)
    assert bob.device_id in connections["devices"]
    media = await hs.ok(
        "GET", f"{ADMIN}/v1/users/{user}/media?from=0&limit=10&order_by=created_ts&dir=b", user=root
    )
    assert [(m["upload_name"], m["media_length"]) for m in media["media"]] == [("notes.txt", 6)]
    joined = await hs.ok("GET", f"{ADMIN}/v1/users/{user}/joined_rooms", user=root)
    assert joined == {"joined_rooms": [room], "total": 1}
    pushers = await hs.ok("GET", f"{ADMIN}/v1/users/{user}/pushers", user=root)
    assert [p["pushkey"] for p in pushers["pushers"]] == ["bob-key"]
    memberships = await hs.ok("GET", f"{ADMIN}/v1/users/{user}/memberships", user=root)
    assert memberships == {"memberships": {room: "join"}}

    # Deactivating from the user page, then the list without and with deactivated users.
    await hs.ok("POST", f"{ADMIN}/v1/deactivate/{user}", {"erase": False}, user=root)
    listed = await hs.ok(
        "GET", f"{ADMIN}/v2/users?from=0&limit=10&guests=false&name={localpart}", user=root
    )
    assert bob.user_id not in [u["name"] for u in listed["users"]]
    listed = await hs.ok(
        "GET",
        f"{ADMIN}/v2/users?from=0&limit=10&guests=false&deactivated=true&name={localpart}",
        user=root,
    )
    assert bob.user_id in [u["name"] for u in listed["users"]]
    assert (await hs.ok("GET", f"{ADMIN}/v1/users/{user}/memberships", user=root))[
        "memberships"
    ] == {room: "leave"}

    # The reports list.
    reports = await hs.ok(
        "GET", f"{ADMIN}/v1/event_reports?from=0&limit=10&dir=b&order_by=received_ts", user=root
    )
    assert "event_reports" in reports and "total" in reports


async def test_user_tabs_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    target = quote(server.admin.user_id)
    for tab in ("joined_rooms", "memberships", "pushers", "media"):
        await assert_admins_only(hs, user, "GET", f"{ADMIN}/v1/users/{target}/{tab}")
    root = server.admin
    bad = await hs.request("GET", f"{ADMIN}/v1/users/{target}/media?order_by=size", user=root)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    ghost = quote("@ghost_tab:localhost")
    missing = await hs.request("GET", f"{ADMIN}/v1/users/{ghost}/pushers", user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
