"""The admin API's foundation: who is an admin, the refusal that says nothing, the audit trail."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from homeserver.api.app_keys import APPENDER
from homeserver.errors import MatrixError
from homeserver.events import types
from homeserver.events.model import Draft
from tests.admin import NOT_ADMIN, SERVER_NAME, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical, server_verifier, verify
from tests.conftest import AppFactory

AUDIT = "/_linkchat/v1/admin/audit"
VERSION = "/_synapse/admin/v1/server_version"


def _admin_flag(user_id: str) -> str:
    return f"/_synapse/admin/v1/users/{quote(user_id)}/admin"


async def test_server_version_is_answered_to_anyone_as_synapse_does(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs = server.hs
    for user in (server.admin, server.user, None):
        reply = await hs.request("GET", VERSION, user=user)
        assert reply.status == 200, reply
        assert reply.body["server_version"].startswith("LinkChat ")


async def test_audit_trail_is_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    await assert_admins_only(server.hs, server.user, "GET", AUDIT)
    page = await server.hs.ok("GET", AUDIT, user=server.admin)
    assert set(page) >= {"actions", "total"}


async def test_refusal_says_nothing_about_who_exists(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    for target in (server.admin.user_id, f"@nobody_here:{SERVER_NAME}", "not a user"):
        await assert_admins_only(hs, user, "GET", _admin_flag(target))
        await assert_admins_only(hs, user, "PUT", _admin_flag(target), {"admin": True})
    bad_token = await hs.request("GET", AUDIT, token="not-a-token")
    assert (bad_token.status, bad_token.errcode) == (401, "M_UNKNOWN_TOKEN")


async def test_a_flagged_admin_may_use_the_admin_api_until_unflagged(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    hs, root, bob = server.hs, server.admin, server.user
    assert (await hs.request("GET", AUDIT, user=bob)).body == NOT_ADMIN
    assert await hs.ok("GET", _admin_flag(bob.user_id), user=root) == {"admin": False}
    assert await hs.ok("GET", _admin_flag(root.user_id), user=root) == {"admin": True}

    await hs.ok("PUT", _admin_flag(bob.user_id), {"admin": True, "reason": "moderator"}, user=root)
    assert await hs.ok("GET", _admin_flag(bob.user_id), user=bob) == {"admin": True}
    page = await hs.ok("GET", AUDIT + f"?target={quote(bob.user_id)}", user=bob)
    [flagged] = page["actions"]
    assert flagged["admin"] == root.user_id
    assert (flagged["action"], flagged["target"]) == ("user.admin", bob.user_id)
    assert (flagged["reason"], flagged["details"]) == ("moderator", {"admin": True})

    # A flagged admin can unflag the others, but never the configured ones nor themself.
    refused = await hs.request("PUT", _admin_flag(root.user_id), {"admin": False}, user=bob)
    assert (refused.status, refused.errcode) == (400, "M_INVALID_PARAM")
    refused = await hs.request("PUT", _admin_flag(bob.user_id), {"admin": False}, user=bob)
    assert (refused.status, refused.errcode) == (400, "M_INVALID_PARAM")

    await hs.ok("PUT", _admin_flag(bob.user_id), {"admin": False}, user=root)
    assert (await hs.request("GET", AUDIT, user=bob)).body == NOT_ADMIN
    assert await hs.ok("GET", _admin_flag(bob.user_id), user=root) == {"admin": False}


async def test_flagging_checks_the_user_and_the_body(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    missing = await hs.request(
        "PUT", _admin_flag(f"@ghost:{SERVER_NAME}"), {"admin": True}, user=root
    )
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    missing = await hs.request("GET", _admin_flag(f"@ghost:{SERVER_NAME}"), user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    remote = await hs.request("PUT", _admin_flag("@eve:elsewhere.org"), {"admin": True}, user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    for body in ({}, {"admin": "yes"}):
        bad = await hs.request("PUT", _admin_flag(server.user.user_id), body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_BAD_JSON"), body
    invalid = await hs.request("GET", _admin_flag("bob"), user=root)
    assert (invalid.status, invalid.errcode) == (400, "M_INVALID_PARAM")


async def test_audit_trail_pages_and_filters(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root = server.hs, server.admin
    users = [server.user, *[await hs.register() for _ in range(3)]]
    for user in users:
        await hs.ok("PUT", _admin_flag(user.user_id), {"admin": True}, user=root)
    await hs.ok("PUT", _admin_flag(users[0].user_id), {"admin": False}, user=users[1])

    newest_first: list[dict[str, object]] = []
    token = None
    while True:
        query = "?limit=2" + (f"&from={token}" if token else "")
        page = await hs.ok("GET", AUDIT + query, user=root)
        assert page["total"] == 5
        assert len(page["actions"]) <= 2
        newest_first += page["actions"]
        token = page.get("next_token")
        if token is None:
            break
    assert len(newest_first) == 5
    assert [a["target"] for a in newest_first] == [
        users[0].user_id,
        *[user.user_id for user in reversed(users)],
    ]
    oldest_first = (await hs.ok("GET", AUDIT + "?dir=f", user=root))["actions"]
    assert oldest_first == list(reversed(newest_first))

    by_target = await hs.ok("GET", AUDIT + f"?target={quote(users[0].user_id)}", user=root)
    assert [a["details"] for a in by_target["actions"]] == [{"admin": False}, {"admin": True}]
    by_admin = await hs.ok("GET", AUDIT + f"?admin={quote(users[1].user_id)}", user=root)
    assert by_admin["total"] == 1
    for action in ("user", "user.admin"):
        assert (await hs.ok("GET", AUDIT + f"?action={action}", user=root))["total"] == 5
    assert (await hs.ok("GET", AUDIT + "?action=user.adm", user=root))["total"] == 0
    first_ts = int(oldest_first[0]["ts"])  # type: ignore[call-overload]
    in_range = await hs.ok("GET", AUDIT + f"?since_ts={first_ts}&until_ts={first_ts}", user=root)
    assert in_range["total"] >= 1
    assert (await hs.ok("GET", AUDIT + "?until_ts=0", user=root))["total"] == 0

    for query in ("limit=0", "limit=1001", "limit=x", "from=abc", "dir=up", "since_ts=-1"):
        bad = await hs.request("GET", AUDIT + "?" + query, user=root)
        assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM"), query


async def test_admin_facts_replay_and_verify(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root, bob = server.hs, server.admin, server.user
    await hs.ok("PUT", _admin_flag(bob.user_id), {"admin": True}, user=root)
    carol = await hs.register()
    await hs.ok("PUT", _admin_flag(carol.user_id), {"admin": True}, user=bob)
    await hs.ok("PUT", _admin_flag(bob.user_id), {"admin": False}, user=carol)
    await assert_replay_identical(fresh_dsn)
    assert await verify(fresh_dsn, server_verifier(hs)) is None


async def test_moderation_chain_holds_only_the_facts_given_rules(
    start_app: AppFactory,
) -> None:
    server = await start_with_admin(start_app)
    appender = server.hs.app[APPENDER]
    chain = types.moderation_chain(SERVER_NAME)
    for draft in (
        Draft(chain, server.admin.user_id, "m.room.message", {"body": "hi"}),
        Draft(chain, server.admin.user_id, types.ADMIN_ACTION, {"action": "Not An Action"}),
        Draft(chain, server.admin.user_id, types.ADMIN_ACTION, {"action": "x"}, state_key=""),
        Draft(chain, server.admin.user_id, types.SERVER_ADMIN, {"admin": 1}, state_key="@a:b"),
        Draft(chain, server.admin.user_id, types.SERVER_ADMIN, {"admin": True}, state_key="a"),
    ):
        with pytest.raises(MatrixError):
            await appender.append(draft)
