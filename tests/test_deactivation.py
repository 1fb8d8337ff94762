"""Deactivation: one implementation behind POST /account/deactivate and the admin API."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from homeserver.api.app_keys import APPENDER, POOL
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft, StateEdit
from homeserver.store import rooms as room_store
from tests.admin import SERVER_NAME, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.test_push_sending import pusher_body

DEACTIVATE = "/_synapse/admin/v1/deactivate/"
USERS = "/_synapse/admin/v2/users/"
PUSH_URL = "https://push.example.com/_matrix/push/v1/notify"


def _password_auth(user: User, password: str | None = None) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": password if password is not None else user.password,
    }


async def _login_status(hs: MatrixClient, user: User, password: str | None = None) -> Any:
    reply = await hs.request("POST", "login", _password_auth(user, password))
    return reply.status, reply.errcode


async def _busy_user(hs: MatrixClient) -> tuple[User, User, list[str], str]:
    """A user with two devices, a pusher, account data, two joined rooms and an invite;
    and a friend in those rooms. Returns (user, friend, joined rooms, invited room)."""
    user, friend = await hs.register(), await hs.register()
    await hs.login(user)
    await hs.ok("POST", "pushers/set", pusher_body(PUSH_URL, "key-" + user.user_id), user=user)
    await hs.ok("PUT", f"user/{user.user_id}/account_data/com.example.x", {"kept": 1}, user=user)
    rooms = [await hs.create_room(friend, preset="public_chat") for _ in range(2)]
    for room in rooms:
        await hs.join(user, room)
        await hs.send(user, room, {"msgtype": "m.text", "body": "said before"})
    invited = await hs.create_room(friend, preset="private_chat")
    await hs.ok("POST", f"rooms/{invited}/invite", {"user_id": user.user_id}, user=friend)
    return user, friend, rooms, invited


async def _assert_deactivated(
    hs: MatrixClient, user: User, friend: User, rooms: list[str], invited: str, dsn: str
) -> None:
    """Every token dead, no room left, no login, no pusher; account data still logged."""
    gone = await hs.request("GET", "account/whoami", user=user)
    assert (gone.status, gone.errcode) == (401, "M_UNKNOWN_TOKEN")
    assert await _login_status(hs, user) == (403, "M_USER_DEACTIVATED")
    assert await _login_status(hs, user, "anything else") == (403, "M_USER_DEACTIVATED")
    for room in [*rooms, invited]:
        members = await hs.ok("GET", f"rooms/{room}/members", user=friend)
        memberships = {e["state_key"]: e["content"]["membership"] for e in members["chunk"]}
        assert memberships[user.user_id] == "leave", room
    conn = await asyncpg.connect(dsn)
    try:
        pushers = await conn.fetchval(
            "SELECT count(*) FROM pushers WHERE user_id = $1", user.user_id
        )
        tokens = await conn.fetchval(
            "SELECT count(*) FROM access_tokens WHERE user_id = $1", user.user_id
        )
        kept = await conn.fetchval(
            "SELECT count(*) FROM account_data WHERE user_id = $1 AND type = 'com.example.x'",
            user.user_id,
        )
    finally:
        await conn.close()
    assert (pushers, tokens, kept) == (0, 0, 1)


async def test_deactivating_oneself_needs_the_password(hs: MatrixClient, run_dsn: str) -> None:
    user, friend, rooms, invited = await _busy_user(hs)
    flows = await hs.request("POST", "account/deactivate", {}, user=user)
    assert flows.status == 401 and "flows" in flows.body
    wrong = await hs.request(
        "POST",
        "account/deactivate",
        {"auth": {**_password_auth(user, "wrong"), "session": flows.body["session"]}},
        user=user,
    )
    assert wrong.status == 401 and wrong.errcode == "M_FORBIDDEN"
    assert (await hs.request("GET", "account/whoami", user=user)).status == 200

    done = await hs.request("POST", "account/deactivate", {"auth": _password_auth(user)}, user=user)
    assert done.status == 200, done
    assert done.body == {"id_server_unbind_result": "no-support"}
    await _assert_deactivated(hs, user, friend, rooms, invited, run_dsn)
    # Not erased: the profile stays.
    profile = await hs.ok("GET", f"profile/{user.user_id}", user=friend)
    assert profile["displayname"] == user.user_id[1:].split(":")[0]
    unauthenticated = await hs.request("POST", "account/deactivate", {})
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_MISSING_TOKEN")


async def test_erasing_oneself_clears_the_profile(hs: MatrixClient) -> None:
    user = await hs.register()
    await hs.ok("PUT", f"profile/{user.user_id}/displayname", {"displayname": "Me"}, user=user)
    done = await hs.request(
        "POST", "account/deactivate", {"erase": True, "auth": _password_auth(user)}, user=user
    )
    assert done.status == 200, done
    other = await hs.register()
    profile = await hs.ok("GET", f"profile/{user.user_id}", user=other)
    assert "displayname" not in profile or profile["displayname"] is None


async def test_an_admin_deactivates_and_erases(start_app: AppFactory, run_dsn: str) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    user, friend, rooms, invited = await _busy_user(hs)
    path = DEACTIVATE + quote(user.user_id)
    await assert_admins_only(hs, server.user, "POST", path, {"erase": True})
    assert (await hs.request("GET", "account/whoami", user=user)).status == 200

    done = await hs.ok("POST", path, {"erase": True, "reason": "spam"}, user=root)
    assert done == {"id_server_unbind_result": "success"}
    await _assert_deactivated(hs, user, friend, rooms, invited, run_dsn)
    shown = await hs.ok("GET", USERS + quote(user.user_id), user=root)
    assert (shown["deactivated"], shown["erased"], shown["displayname"]) == (True, True, None)
    trail = await hs.ok("GET", f"/_linkchat/v1/admin/audit?target={quote(user.user_id)}", user=root)
    [record] = trail["actions"]
    assert (record["action"], record["reason"], record["details"]) == (
        "user.deactivate",
        "spam",
        {"erase": True},
    )
    listed = await hs.ok("GET", "/_synapse/admin/v2/users?limit=1000", user=root)
    assert user.user_id not in [u["name"] for u in listed["users"]]
    listed = await hs.ok("GET", "/_synapse/admin/v2/users?limit=1000&deactivated=true", user=root)
    assert user.user_id in [u["name"] for u in listed["users"]]

    # Deactivating again finishes whatever is left, and an empty body is allowed.
    async with hs.http.post(path, headers={"Authorization": f"Bearer {root.token}"}) as again:
        assert again.status == 200
    missing = await hs.request("POST", DEACTIVATE + f"@ghost_x:{SERVER_NAME}", {}, user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    remote = await hs.request("POST", DEACTIVATE + "@a:elsewhere.org", {}, user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    bad = await hs.request("POST", DEACTIVATE + quote(friend.user_id), {"erase": "y"}, user=root)
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")


async def test_put_user_deactivates_and_reactivates_with_a_password(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    user = await hs.register()
    path = USERS + quote(user.user_id)
    shown = await hs.ok("PUT", path, {"deactivated": True}, user=root)
    assert shown["deactivated"] is True
    assert await _login_status(hs, user) == (403, "M_USER_DEACTIVATED")

    refused = await hs.request("PUT", path, {"deactivated": False}, user=root)
    assert (refused.status, refused.errcode) == (400, "M_MISSING_PARAM")
    shown = await hs.ok("PUT", path, {"deactivated": False, "password": "back again"}, user=root)
    assert (shown["deactivated"], shown["erased"]) == (False, False)
    assert await _login_status(hs, user, "back again") == (200, None)
    trail = await hs.ok(
        "GET", f"/_linkchat/v1/admin/audit?target={quote(user.user_id)}&dir=f", user=root
    )
    assert [a["details"]["changed"] for a in trail["actions"]] == [
        ["deactivated"],
        ["deactivated", "password"],
    ]


async def test_deactivations_replay(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root = server.hs, server.admin
    user, _friend, _rooms, _invited = await _busy_user(hs)
    other = await hs.register("other_" + secrets.token_hex(3))
    await hs.ok("POST", DEACTIVATE + quote(user.user_id), {"erase": True}, user=root)
    await hs.ok("PUT", USERS + quote(other.user_id), {"deactivated": True}, user=root)
    await hs.ok(
        "PUT", USERS + quote(other.user_id), {"deactivated": False, "password": "pw"}, user=root
    )
    await assert_replay_identical(fresh_dsn)


async def test_an_account_fact_edit_never_changes_what_the_account_is(hs: MatrixClient) -> None:
    user = await hs.register()
    appender = hs.app[APPENDER]
    async with hs.app[POOL].acquire() as conn:
        fact = await room_store.state_event(conn, user.user_id, types.ACCOUNT, "")
    assert fact is not None
    edits = [
        Draft(user.user_id, user.user_id, types.ACCOUNT, dict(fact.content), state_key=""),
        StateEdit(
            user.user_id,
            user.user_id,
            types.ACCOUNT,
            {**fact.content, "kind": "device"},
            state_key="",
            replaces=fact.event_id,
        ),
        StateEdit(
            user.user_id,
            user.user_id,
            types.ACCOUNT,
            {**fact.content, "created_ts": 1},
            state_key="",
            replaces=fact.event_id,
        ),
    ]
    for draft in edits:
        with pytest.raises(MatrixError):
            await appender.append(draft)
    assert (await hs.request("GET", "account/whoami", user=user)).status == 200
