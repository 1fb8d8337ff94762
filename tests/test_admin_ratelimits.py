"""Admin API: users' own rate limits (override_ratelimit) and logging in as a user."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from homeserver.config import RateLimit
from tests.admin import SERVER_NAME, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient, User
from tests.test_rate_limits import NO_REFILL, only

OVERRIDE = "/_synapse/admin/v1/users/{}/override_ratelimit"
ADMIN_FLAG = "/_synapse/admin/v1/users/{}/admin"
LOGIN = "/_synapse/admin/v1/users/{}/login"
AUDIT = "/_linkchat/v1/admin/audit"
# Two messages, then nothing for the rest of the test.
STRICT = only(message=RateLimit(per_second=NO_REFILL, burst=2))


def _override(user: User) -> str:
    return OVERRIDE.format(quote(user.user_id))


def _admin_flag(user: User) -> str:
    return ADMIN_FLAG.format(quote(user.user_id))


async def _sends(hs: MatrixClient, user: User, room: str, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        reply = await hs.request(
            "PUT",
            f"rooms/{room}/send/m.room.message/{secrets.token_hex(6)}",
            {"msgtype": "m.text", "body": "hi"},
            user=user,
        )
        statuses.append(reply.status)
    return statuses


async def test_override_endpoints_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    path = _override(server.admin)
    await assert_admins_only(hs, user, "GET", path)
    await assert_admins_only(hs, user, "POST", path, {})
    await assert_admins_only(hs, user, "DELETE", path)
    await assert_admins_only(hs, user, "POST", LOGIN.format(quote(server.admin.user_id)), {})


async def test_an_override_lifts_or_replaces_a_users_limits(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    localpart = "root_" + secrets.token_hex(4)
    hs = await start_app(fresh_dsn, admins=[f"@{localpart}:{SERVER_NAME}"], rate_limits=STRICT)
    root, bob = await hs.register(localpart), await hs.register()
    room = await hs.create_room(bob)
    assert await hs.ok("GET", _override(bob), user=root) == {}
    assert await _sends(hs, bob, room, 3) == [200, 200, 429]

    lifted = await hs.ok("POST", _override(bob), {"reason": "bridge bot"}, user=root)
    assert lifted == {"messages_per_second": 0, "burst_count": 0}
    assert await hs.ok("GET", _override(bob), user=root) == lifted
    assert await _sends(hs, bob, room, 6) == [200] * 6

    own = {"messages_per_second": 1000, "burst_count": 50}
    assert await hs.ok("POST", _override(bob), own, user=root) == own
    assert await _sends(hs, bob, room, 6) == [200] * 6

    assert await hs.ok("DELETE", _override(bob), user=root) == {}
    assert await hs.ok("GET", _override(bob), user=root) == {}
    assert 429 in await _sends(hs, bob, room, 3)

    trail = await hs.ok("GET", f"{AUDIT}?target={quote(bob.user_id)}&dir=f", user=root)
    assert [(a["action"], a.get("details")) for a in trail["actions"]] == [
        ("user.ratelimit.set", {"messages_per_second": 0, "burst_count": 0}),
        ("user.ratelimit.set", own),
        ("user.ratelimit.delete", None),
    ]
    assert trail["actions"][0]["reason"] == "bridge bot"
    await assert_replay_identical(fresh_dsn)

    for body in (
        {"messages_per_second": -1},
        {"burst_count": "5"},
        {"messages_per_second": 1.5},
        {"burst_count": True},
    ):
        bad = await hs.request("POST", _override(bob), body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM"), body
    ghost = OVERRIDE.format(quote(f"@ghost_r:{SERVER_NAME}"))
    missing = await hs.request("GET", ghost, user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")


async def _exempted_on_every_process(
    start_app: AppFactory, dsn: str, exempt: Callable[[MatrixClient, User, User], Awaitable[object]]
) -> tuple[MatrixClient, MatrixClient, User, User, str]:
    """Two processes on one database, joined by the PostgreSQL bus, and bob limited on the
    second: `exempt(first, root, bob)`, done through the first, lifts bob's limit on the
    second, and a process started later has it too. Returns (first, second, root, bob, room)."""
    localpart = "root_" + secrets.token_hex(4)
    settings: dict[str, Any] = {
        "admins": [f"@{localpart}:{SERVER_NAME}"],
        "rate_limits": STRICT,
        "bus": "postgres",
    }
    first = await start_app(dsn, **settings)
    second = await start_app(dsn, **settings)
    root, bob = await first.register(localpart), await first.register()
    room = await first.create_room(bob)
    assert await _sends(second, bob, room, 3) == [200, 200, 429]
    await exempt(first, root, bob)

    async def lifted_on_second() -> bool:
        return await _sends(second, bob, room, 1) == [200]

    await second.eventually(lifted_on_second)
    third = await start_app(dsn, **settings)
    assert await _sends(third, bob, room, 4) == [200] * 4
    return first, second, root, bob, room


async def test_an_override_holds_on_every_process(start_app: AppFactory, fresh_dsn: str) -> None:
    await _exempted_on_every_process(
        start_app,
        fresh_dsn,
        lambda first, root, bob: first.ok("POST", _override(bob), {}, user=root),
    )


async def test_an_admin_flagged_through_the_api_is_exempt_until_unflagged(
    start_app: AppFactory,
) -> None:
    """Issue 18: the flag makes an admin for every rule that favours admins, not only for
    the admin API: the rate limits, and aliases for rooms they are not in."""
    localpart = "root_" + secrets.token_hex(4)
    hs = await start_app(admins=[f"@{localpart}:{SERVER_NAME}"], rate_limits=STRICT)
    root, bob, alice = await hs.register(localpart), await hs.register(), await hs.register()
    room = await hs.create_room(bob)
    private = await hs.create_room(alice, preset="private_chat")

    async def put_alias() -> int:
        alias = f"#flag_{secrets.token_hex(4)}:{SERVER_NAME}"
        path = "directory/room/" + quote(alias, safe="")
        return (await hs.request("PUT", path, {"room_id": private}, user=bob)).status

    assert await _sends(hs, bob, room, 3) == [200, 200, 429]
    assert await put_alias() == 403

    await hs.ok("PUT", _admin_flag(bob), {"admin": True}, user=root)
    assert await _sends(hs, bob, room, 6) == [200] * 6
    assert await put_alias() == 200

    await hs.ok("PUT", _admin_flag(bob), {"admin": False}, user=root)
    assert 429 in await _sends(hs, bob, room, 3)
    assert await put_alias() == 403


async def test_an_admin_flag_holds_for_the_rate_limits_of_every_process(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    """A flag given through one process exempts the user on every process, and taking it
    away through the first limits them again on the second."""
    first, second, root, bob, room = await _exempted_on_every_process(
        start_app,
        fresh_dsn,
        lambda first, root, bob: first.ok("PUT", _admin_flag(bob), {"admin": True}, user=root),
    )
    await first.ok("PUT", _admin_flag(bob), {"admin": False}, user=root)

    async def limited_on_second() -> bool:
        return await _sends(second, bob, room, 1) == [429]

    await second.eventually(limited_on_second)


async def test_an_admin_logs_in_as_a_user_for_support(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    path = LOGIN.format(quote(bob.user_id))
    token = (await hs.ok("POST", path, {"reason": "ticket 42"}, user=root))["access_token"]
    assert (await hs.ok("GET", "account/whoami", token=token))["user_id"] == bob.user_id
    devices = await hs.ok("GET", "devices", user=bob)
    assert [d["device_id"] for d in devices["devices"]] == [bob.device_id]
    trail = await hs.ok("GET", f"{AUDIT}?target={quote(bob.user_id)}", user=root)
    [record] = trail["actions"]
    assert (record["action"], record["admin"], record["reason"]) == (
        "user.login",
        root.user_id,
        "ticket 42",
    )
    assert token not in str(trail)

    # The token dies at /logout, and when the user's sessions end (a password reset).
    await hs.ok("POST", "logout", {}, token=token)
    assert (await hs.request("GET", "account/whoami", token=token)).status == 401
    other = (await hs.ok("POST", path, {}, user=root))["access_token"]
    await hs.ok(
        "POST",
        f"/_synapse/admin/v1/reset_password/{quote(bob.user_id)}",
        {"new_password": "new one"},
        user=root,
    )
    assert (await hs.request("GET", "account/whoami", token=other)).status == 401

    expired_at = int(time.time() * 1000) - 1
    expired = (await hs.ok("POST", path, {"valid_until_ms": expired_at}, user=root))["access_token"]
    gone = await hs.request("GET", "account/whoami", token=expired)
    assert (gone.status, gone.errcode) == (401, "M_UNKNOWN_TOKEN")
    later = int(time.time() * 1000) + 3_600_000
    fresh = (await hs.ok("POST", path, {"valid_until_ms": later}, user=root))["access_token"]
    assert (await hs.request("GET", "account/whoami", token=fresh)).status == 200

    self_login = await hs.request("POST", LOGIN.format(quote(root.user_id)), {}, user=root)
    assert (self_login.status, self_login.errcode) == (400, "M_INVALID_PARAM")
    bad = await hs.request("POST", path, {"valid_until_ms": "soon"}, user=root)
    assert (bad.status, bad.errcode) == (400, "M_BAD_JSON")
