"""Admin API, user accounts: list, look up, create and modify, as Synapse's User Admin API."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from tests.admin import SERVER_NAME, AdminServer, assert_admins_only, start_with_admin
from tests.conftest import AppFactory
from tests.matrix import MatrixClient

USERS = "/_synapse/admin/v2/users"
AUDIT = "/_linkchat/v1/admin/audit"
LISTED_KEYS = {
    "name",
    "is_guest",
    "admin",
    "user_type",
    "deactivated",
    "erased",
    "shadow_banned",
    "displayname",
    "avatar_url",
    "creation_ts",
    "last_seen_ts",
    "locked",
}


def _user(user_id: str) -> str:
    return f"{USERS}/{quote(user_id)}"


async def _login(hs: MatrixClient, user_id: str, password: str) -> int:
    reply = await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        },
    )
    return reply.status


async def test_user_endpoints_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    await assert_admins_only(hs, user, "GET", USERS)
    await assert_admins_only(hs, user, "GET", _user(server.admin.user_id))
    await assert_admins_only(hs, user, "PUT", _user(user.user_id), {"admin": True})
    await assert_admins_only(hs, user, "PUT", _user(f"@new_{secrets.token_hex(3)}:x"), {})


async def test_list_users_pages_filters_and_orders(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root = server.hs, server.admin
    names = ["anna", "bernd", "carla", "dora"]
    users = [await hs.register(f"{name}_{secrets.token_hex(2)}") for name in names]
    await hs.ok(
        "PUT", f"profile/{users[3].user_id}/displayname", {"displayname": "zz top"}, user=users[3]
    )
    everyone = sorted([root.user_id, server.user.user_id] + [u.user_id for u in users])

    seen: list[str] = []
    token = "0"
    while token is not None:
        page = await hs.ok("GET", f"{USERS}?limit=2&from={token}", user=root)
        assert page["total"] == len(everyone)
        assert all(set(item) == LISTED_KEYS for item in page["users"])
        seen += [item["name"] for item in page["users"]]
        token = page.get("next_token")
    assert seen == everyone

    by_name = await hs.ok("GET", f"{USERS}?name=BERN", user=root)
    assert [u["name"] for u in by_name["users"]] == [users[1].user_id]
    by_displayname = await hs.ok("GET", f"{USERS}?name=ZZ", user=root)
    assert [u["name"] for u in by_displayname["users"]] == [users[3].user_id]
    assert by_displayname["users"][0]["displayname"] == "zz top"
    by_id = await hs.ok("GET", f"{USERS}?user_id={quote(users[2].user_id)}", user=root)
    assert [u["name"] for u in by_id["users"]] == [users[2].user_id]

    admins = await hs.ok("GET", f"{USERS}?admins=true", user=root)
    assert [u["name"] for u in admins["users"]] == [root.user_id]
    assert admins["users"][0]["admin"] is True
    others = await hs.ok("GET", f"{USERS}?admins=false", user=root)
    assert root.user_id not in [u["name"] for u in others["users"]]
    assert others["total"] == len(everyone) - 1

    newest = await hs.ok("GET", f"{USERS}?order_by=creation_ts&dir=b&limit=1", user=root)
    assert newest["users"][0]["name"] == users[3].user_id
    assert newest["next_token"] == "1"
    by_displayname_desc = await hs.ok("GET", f"{USERS}?order_by=displayname&dir=b", user=root)
    assert by_displayname_desc["users"][0]["name"] == users[3].user_id

    for query in ("order_by=age", "limit=0", "from=-1", "dir=x", "admins=yes", "guests=1"):
        bad = await hs.request("GET", f"{USERS}?{query}", user=root)
        assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM"), query


async def test_get_user_shows_the_account_as_synapse_does(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    shown = await hs.ok("GET", _user(bob.user_id), user=root)
    assert shown["name"] == bob.user_id
    assert shown["displayname"] == bob.user_id[1:].split(":")[0]
    assert (shown["admin"], shown["deactivated"], shown["is_guest"]) == (False, False, False)
    assert shown["threepids"] == [] and shown["external_ids"] == []
    assert isinstance(shown["creation_ts"], int) and isinstance(shown["last_seen_ts"], int)
    assert (await hs.ok("GET", _user(root.user_id), user=root))["admin"] is True

    missing = await hs.request(
        "GET", _user(f"@nobody_{secrets.token_hex(3)}:{SERVER_NAME}"), user=root
    )
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    remote = await hs.request("GET", _user("@bob:elsewhere.org"), user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")


async def _create(server: AdminServer, **body: object) -> tuple[str, dict[str, object]]:
    user_id = f"@made_{secrets.token_hex(4)}:{SERVER_NAME}"
    reply = await server.hs.request("PUT", _user(user_id), body, user=server.admin)
    assert reply.status == 201, reply
    return user_id, reply.body


async def test_an_admin_creates_an_account_that_can_log_in(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    user_id, created = await _create(
        server,
        password="s3cret pass",
        displayname="Made By Root",
        threepids=[{"medium": "email", "address": " Made@Example.COM "}],
        admin=True,
        reason="new staff",
    )
    assert created["name"] == user_id
    assert created["displayname"] == "Made By Root"
    assert created["admin"] is True
    [threepid] = created["threepids"]  # type: ignore[misc]
    assert (threepid["medium"], threepid["address"]) == ("email", "made@example.com")
    assert await _login(hs, user_id, "s3cret pass") == 200
    profile = await hs.ok("GET", f"profile/{user_id}", user=server.user)
    assert profile["displayname"] == "Made By Root"

    trail = await hs.ok("GET", f"{AUDIT}?target={quote(user_id)}&dir=f", user=root)
    assert [a["action"] for a in trail["actions"]] == ["user.create", "user.admin"]
    assert trail["actions"][0]["reason"] == "new staff"
    assert "s3cret" not in str(trail)

    again = await hs.request("PUT", _user(user_id), {"displayname": "Renamed"}, user=root)
    assert again.status == 200 and again.body["displayname"] == "Renamed"

    bare_id, bare = await _create(server)
    assert bare["admin"] is False
    assert await _login(hs, bare_id, "") == 403  # no password until one is set


async def test_password_change_logs_out_unless_asked_not_to(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    bob = await hs.register()
    await hs.ok(
        "PUT", _user(bob.user_id), {"password": "second one", "logout_devices": False}, user=root
    )
    assert (await hs.request("GET", "account/whoami", user=bob)).status == 200
    assert await _login(hs, bob.user_id, bob.password) == 403
    assert await _login(hs, bob.user_id, "second one") == 200

    await hs.ok("PUT", _user(bob.user_id), {"password": "third one"}, user=root)
    gone = await hs.request("GET", "account/whoami", user=bob)
    assert (gone.status, gone.errcode) == (401, "M_UNKNOWN_TOKEN")
    assert await _login(hs, bob.user_id, "third one") == 200
    modified = await hs.ok(
        "GET", f"{AUDIT}?target={quote(bob.user_id)}&action=user.modify", user=root
    )
    assert [a["details"] for a in modified["actions"]] == [
        {"changed": ["password"], "logout_devices": True},
        {"changed": ["password"], "logout_devices": False},
    ]


async def test_threepids_are_replaced_and_held_by_one_account(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    mail = f"bob-{secrets.token_hex(3)}@example.com"
    both = [{"medium": "email", "address": mail}, {"medium": "msisdn", "address": "4915112345"}]
    shown = await hs.ok("PUT", _user(bob.user_id), {"threepids": both}, user=root)
    assert sorted(t["address"] for t in shown["threepids"]) == sorted([mail, "4915112345"])
    shown = await hs.ok("PUT", _user(bob.user_id), {"threepids": both[:1]}, user=root)
    assert [t["address"] for t in shown["threepids"]] == [mail]

    carol = await hs.register()
    taken = await hs.request("PUT", _user(carol.user_id), {"threepids": both[:1]}, user=root)
    assert (taken.status, taken.errcode) == (400, "M_THREEPID_IN_USE")
    assert (await hs.ok("GET", _user(carol.user_id), user=root))["threepids"] == []
    for bad in ({"medium": "fax", "address": "1"}, {"medium": "email", "address": "nope"}):
        refused = await hs.request("PUT", _user(carol.user_id), {"threepids": [bad]}, user=root)
        assert (refused.status, refused.errcode) == (400, "M_INVALID_PARAM"), bad


async def test_put_user_refuses_bad_input(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    for body in ({"password": "x" * 513}, {"displayname": 7}, {"admin": "yes"}, {"threepids": {}}):
        bad = await hs.request("PUT", _user(bob.user_id), body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_BAD_JSON"), body
    bad = await hs.request("PUT", _user(bob.user_id), {"avatar_url": "http://x"}, user=root)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    remote = await hs.request("PUT", _user("@eve:elsewhere.org"), {}, user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    invalid = await hs.request("PUT", _user(f"@Bad Name:{SERVER_NAME}"), {}, user=root)
    assert invalid.status == 400
    reserved = await hs.request("PUT", _user(f"@x.dev.y:{SERVER_NAME}"), {}, user=root)
    assert (reserved.status, reserved.errcode) == (400, "M_EXCLUSIVE")
