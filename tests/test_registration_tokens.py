"""Registration tokens: the admin API (Synapse's shapes) and the m.login.registration_token
UIA stage at /register when registration.require_token is on."""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeserver.api.registration_tokens import REGISTRATION_TOKENS
from tests.admin import SERVER_NAME, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.matrix import MatrixClient

TOKENS = "/_synapse/admin/v1/registration_tokens"
VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"
STAGE = "m.login.registration_token"


def _later_ms() -> int:
    return int(time.time() * 1000) + 3_600_000


async def test_token_endpoints_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    await assert_admins_only(hs, user, "GET", TOKENS)
    await assert_admins_only(hs, user, "POST", TOKENS + "/new", {})
    await assert_admins_only(hs, user, "GET", TOKENS + "/abcd")
    await assert_admins_only(hs, user, "PUT", TOKENS + "/abcd", {"uses_allowed": 1})
    await assert_admins_only(hs, user, "DELETE", TOKENS + "/abcd")


async def test_an_admin_creates_lists_updates_and_deletes_tokens(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    made = await hs.ok("POST", TOKENS + "/new", {}, user=root)
    assert len(made["token"]) == 16
    assert {k: v for k, v in made.items() if k != "token"} == {
        "uses_allowed": None,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    name = "tok-" + secrets.token_hex(3)
    given = await hs.ok(
        "POST", TOKENS + "/new", {"token": name, "uses_allowed": 0, "reason": "x"}, user=root
    )
    assert (given["token"], given["uses_allowed"]) == (name, 0)
    short = await hs.ok("POST", TOKENS + "/new", {"length": 5}, user=root)
    assert len(short["token"]) == 5

    listed = {t["token"] for t in (await hs.ok("GET", TOKENS, user=root))["registration_tokens"]}
    assert {made["token"], name, short["token"]} <= listed
    valid = {
        t["token"]
        for t in (await hs.ok("GET", TOKENS + "?valid=true", user=root))["registration_tokens"]
    }
    invalid = {
        t["token"]
        for t in (await hs.ok("GET", TOKENS + "?valid=false", user=root))["registration_tokens"]
    }
    assert made["token"] in valid and name in invalid and name not in valid

    expiry = _later_ms()
    updated = await hs.ok("PUT", f"{TOKENS}/{name}", {"expiry_time": expiry}, user=root)
    assert (updated["uses_allowed"], updated["expiry_time"]) == (0, expiry)
    updated = await hs.ok("PUT", f"{TOKENS}/{name}", {"uses_allowed": None}, user=root)
    assert (updated["uses_allowed"], updated["expiry_time"]) == (None, expiry)
    assert await hs.ok("GET", f"{TOKENS}/{name}", user=root) == updated

    assert await hs.ok("DELETE", f"{TOKENS}/{name}", user=root) == {}
    gone = await hs.request("GET", f"{TOKENS}/{name}", user=root)
    assert (gone.status, gone.errcode) == (404, "M_NOT_FOUND")
    assert gone.body["error"] == f"No such registration token: {name}"
    trail = await hs.ok("GET", f"/_linkchat/v1/admin/audit?target={name}&dir=f", user=root)
    assert [a["action"] for a in trail["actions"]] == [
        "registration_token.create",
        "registration_token.update",
        "registration_token.update",
        "registration_token.delete",
    ]

    for body in (
        {"token": made["token"]},
        {"token": "not valid!"},
        {"length": 0},
        {"length": 65},
        {"expiry_time": 1},
    ):
        bad = await hs.request("POST", TOKENS + "/new", body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM"), body
    for body in ({"uses_allowed": -1}, {"uses_allowed": "1"}, {"expiry_time": 1.5}):
        bad = await hs.request("POST", TOKENS + "/new", body, user=root)
        assert (bad.status, bad.errcode) == (400, "M_BAD_JSON"), body
    missing = await hs.request("PUT", f"{TOKENS}/nothing-here", {}, user=root)
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")


async def _register(hs: MatrixClient, auth: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {
        "username": "reg_" + secrets.token_hex(4),
        "password": "long enough pw",
    }
    if auth is not None:
        body["auth"] = auth
    return await hs.request("POST", "register", body)


async def test_registration_needs_a_valid_token(start_app: AppFactory, fresh_dsn: str) -> None:
    localpart = "root_" + secrets.token_hex(4)
    hs = await start_app(
        fresh_dsn,
        admins=[f"@{localpart}:{SERVER_NAME}"],
        registration={"require_token": True},
    )
    # The first admin cannot register without a token either: one made as the CLI would.
    token = (
        await hs.app[REGISTRATION_TOKENS].create(
            f"@{localpart}:{SERVER_NAME}", "first", 16, 2, None, None
        )
    ).token

    challenge = await _register(hs, None)
    assert challenge.status == 401
    assert challenge.body["flows"] == [{"stages": [STAGE]}]
    wrong = await _register(hs, {"type": STAGE, "token": "wrong-token"})
    assert (wrong.status, wrong.errcode) == (401, "M_UNAUTHORIZED")
    assert (await hs.ok("GET", f"{VALIDITY}?token={token}"))["valid"] is True
    assert (await hs.ok("GET", f"{VALIDITY}?token=wrong"))["valid"] is False

    # In two steps: the 401's session, then the token in it.
    first = await _register(hs, None)
    session = first.body["session"]
    body = {
        "username": localpart,
        "password": "root pw",
        "auth": {"type": STAGE, "token": token, "session": session},
    }
    admin = await hs.request("POST", "register", body)
    assert admin.status == 200, admin
    root_token = admin.body["access_token"]
    shown = await hs.ok("GET", f"{TOKENS}/{token}", token=root_token)
    assert (shown["pending"], shown["completed"]) == (0, 1)

    # A token accepted in a session is held for it: its last use is pending there.
    held = await hs.request("POST", "register", {})
    half = {"type": STAGE, "token": token, "session": held.body["session"]}
    pending = await hs.request("POST", "register", {"auth": half})
    # The flow is complete, but no password was given yet.
    assert (pending.status, pending.errcode) == (400, "M_MISSING_PARAM"), pending
    shown = await hs.ok("GET", f"{TOKENS}/{token}", token=root_token)
    assert (shown["pending"], shown["completed"]) == (1, 1)
    other = await _register(hs, {"type": STAGE, "token": token})
    assert (other.status, other.errcode) == (401, "M_UNAUTHORIZED")
    assert (await hs.ok("GET", f"{VALIDITY}?token={token}"))["valid"] is False
    done = await hs.request(
        "POST",
        "register",
        {"username": "late_" + secrets.token_hex(3), "password": "pw pw pw", "auth": half},
    )
    assert done.status == 200, done
    shown = await hs.ok("GET", f"{TOKENS}/{token}", token=root_token)
    assert (shown["pending"], shown["completed"]) == (0, 2)
    await assert_replay_identical(fresh_dsn)


async def test_validity_is_refused_when_tokens_are_not_required(hs: MatrixClient) -> None:
    refused = await hs.request("GET", f"{VALIDITY}?token=abc")
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
