"""Accounts over HTTP: registration, login, logout, whoami, password change and devices."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg

from tests.conftest import AppFactory
from tests.matrix import MatrixClient, Reply, User

DUMMY = {"type": "m.login.dummy"}


def _name() -> str:
    return "acct_" + secrets.token_hex(5)


def _password_auth(user: User, password: str | None = None, session: str | None = None) -> Any:
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password if password is None else password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def _device_ids(hs: MatrixClient, user: User) -> set[str]:
    body = await hs.ok("GET", "devices", user=user)
    return {device["device_id"] for device in body["devices"]}


def _assert_unknown_token(reply: Reply) -> None:
    assert reply.status == 401, reply
    assert reply.errcode == "M_UNKNOWN_TOKEN"


# --- registration -------------------------------------------------------------


async def test_registration_without_auth_returns_the_dummy_flow_then_succeeds(
    hs: MatrixClient,
) -> None:
    name = _name()
    first = await hs.request("POST", "register", {"username": name, "password": "pw"})
    assert first.status == 401
    assert "errcode" not in first.body
    assert first.body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert first.body["params"] == {}
    session = first.body["session"]
    assert isinstance(session, str) and session

    second = await hs.request(
        "POST",
        "register",
        {"username": name, "password": "pw", "auth": {**DUMMY, "session": session}},
    )
    assert second.status == 200, second
    assert second.body["user_id"] == f"@{name}:localhost"
    assert second.body["access_token"]
    assert second.body["device_id"]
    whoami = await hs.ok("GET", "account/whoami", token=second.body["access_token"])
    assert whoami["user_id"] == f"@{name}:localhost"


async def test_registration_probe_with_empty_body_lists_the_flows(hs: MatrixClient) -> None:
    # Element and other clients POST {} first to learn which flows the server offers.
    reply = await hs.request("POST", "register", {})
    assert reply.status == 401, reply
    assert reply.body["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_registering_without_a_password_is_refused(hs: MatrixClient) -> None:
    reply = await hs.request("POST", "register", {"username": _name(), "auth": DUMMY})
    assert reply.status == 400
    assert reply.errcode == "M_MISSING_PARAM"


async def test_registering_a_taken_username_fails_with_user_in_use(hs: MatrixClient) -> None:
    user = await hs.register()
    localpart = user.user_id[1:].split(":")[0]
    reply = await hs.request(
        "POST", "register", {"username": localpart, "password": "other", "auth": DUMMY}
    )
    assert reply.status == 400
    assert reply.errcode == "M_USER_IN_USE"
    # The original owner's password still works.
    await hs.login(user)


async def test_invalid_usernames_are_refused(hs: MatrixClient) -> None:
    for username in ["al@ice", "", "_hidden", "a" * 250, "bob\n", "space y", "Ålice"]:
        reply = await hs.request(
            "POST", "register", {"username": username, "password": "pw", "auth": DUMMY}
        )
        assert reply.status == 400, (username, reply)
        assert reply.errcode == "M_INVALID_USERNAME", (username, reply)


async def test_username_availability(hs: MatrixClient) -> None:
    free = await hs.ok("GET", f"register/available?username={_name()}")
    assert free == {"available": True}

    user = await hs.register()
    taken = await hs.request("GET", f"register/available?username={user.user_id[1:].split(':')[0]}")
    assert taken.status == 400
    assert taken.errcode == "M_USER_IN_USE"

    invalid = await hs.request("GET", "register/available?username=Not_Valid")
    assert invalid.status == 400
    assert invalid.errcode == "M_INVALID_USERNAME"

    missing = await hs.request("GET", "register/available")
    assert missing.status == 400
    assert missing.errcode == "M_MISSING_PARAM"


async def test_inhibit_login_registers_without_a_token(hs: MatrixClient) -> None:
    name = _name()
    body = await hs.ok(
        "POST",
        "register",
        {"username": name, "password": "pw", "inhibit_login": True, "auth": DUMMY},
    )
    assert body["user_id"] == f"@{name}:localhost"
    assert "access_token" not in body
    assert "device_id" not in body
    # The account exists and can log in.
    await hs.ok(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": "pw",
        },
    )


async def test_registration_disabled_is_forbidden(start_app: AppFactory) -> None:
    hs = await start_app(registration={"enabled": False})
    reply = await hs.request(
        "POST", "register", {"username": _name(), "password": "pw", "auth": DUMMY}
    )
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


async def test_short_password_is_refused_as_weak(start_app: AppFactory) -> None:
    hs = await start_app(registration={"min_password_length": 8})
    reply = await hs.request(
        "POST", "register", {"username": _name(), "password": "short", "auth": DUMMY}
    )
    assert reply.status == 400
    assert reply.errcode == "M_WEAK_PASSWORD"
    await hs.register(password="long enough")


async def test_guest_registration_is_forbidden(hs: MatrixClient) -> None:
    reply = await hs.request("POST", "register?kind=guest", {})
    assert reply.status == 403
    assert reply.errcode == "M_GUEST_ACCESS_FORBIDDEN"


async def test_concurrent_registrations_of_one_username_give_it_to_exactly_one(
    hs: MatrixClient,
) -> None:
    name = _name()
    passwords = [f"password-{n}" for n in range(10)]
    replies = await asyncio.gather(
        *(
            hs.request("POST", "register", {"username": name, "password": pw, "auth": DUMMY})
            for pw in passwords
        )
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [400] * 9, [(r.status, r.body) for r in replies]
    assert all(r.errcode == "M_USER_IN_USE" for r in replies if r.status != 200)
    # The winner's password is the one stored: no loser overwrote it.
    winner = next(pw for pw, r in zip(passwords, replies, strict=True) if r.status == 200)
    for pw in passwords:
        reply = await hs.request(
            "POST",
            "login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": name},
                "password": pw,
            },
        )
        assert reply.status == (200 if pw == winner else 403)


# --- login ------------------------------------------------------------------------


async def test_login_offers_password_flow(hs: MatrixClient) -> None:
    body = await hs.ok("GET", "login")
    assert {"type": "m.login.password"} in body["flows"]


async def test_login_by_localpart_or_user_id_in_any_case_and_legacy_user_field(
    hs: MatrixClient,
) -> None:
    user = await hs.register(password="s3cret")
    localpart = user.user_id[1:].split(":")[0]
    bodies: list[dict[str, Any]] = [
        {"identifier": {"type": "m.id.user", "user": localpart}},
        {"identifier": {"type": "m.id.user", "user": user.user_id}},
        {"user": localpart},
        {"user": user.user_id},
        {"identifier": {"type": "m.id.user", "user": localpart.upper()}},
        {"identifier": {"type": "m.id.user", "user": user.user_id.upper()[:-10] + ":localhost"}},
    ]
    tokens = set()
    for body in bodies:
        reply = await hs.ok(
            "POST", "login", {"type": "m.login.password", "password": "s3cret", **body}
        )
        assert reply["user_id"] == user.user_id
        assert reply["device_id"]
        whoami = await hs.ok("GET", "account/whoami", token=reply["access_token"])
        assert whoami["user_id"] == user.user_id
        tokens.add(reply["access_token"])
    assert len(tokens) == len(bodies)


async def test_wrong_password_and_unknown_user_are_forbidden(hs: MatrixClient) -> None:
    user = await hs.register()
    for who, password in [(user.user_id, "wrong"), ("nobody_" + secrets.token_hex(4), "pw")]:
        reply = await hs.request(
            "POST",
            "login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": who},
                "password": password,
            },
        )
        assert reply.status == 403
        assert reply.errcode == "M_FORBIDDEN"


async def test_unknown_login_type_is_a_bad_request(hs: MatrixClient) -> None:
    reply = await hs.request("POST", "login", {"type": "m.login.magic", "user": "x"})
    assert reply.status == 400
    assert reply.errcode


async def test_login_with_existing_device_id_reuses_the_device(hs: MatrixClient) -> None:
    user = await hs.register()
    again = await hs.login(user, device_id=user.device_id)
    assert again.device_id == user.device_id
    assert again.token != user.token
    assert await _device_ids(hs, again) == {user.device_id}


async def test_login_with_new_device_id_creates_that_device(hs: MatrixClient) -> None:
    user = await hs.register()
    phone = await hs.login(user, device_id="PHONE", initial_device_display_name="My phone")
    assert phone.device_id == "PHONE"
    device = await hs.ok("GET", "devices/PHONE", user=user)
    assert device["display_name"] == "My phone"


# --- logout and whoami --------------------------------------------------------------


async def test_whoami_names_the_user_and_device(hs: MatrixClient) -> None:
    user = await hs.register()
    body = await hs.ok("GET", "account/whoami", user=user)
    assert body["user_id"] == user.user_id
    assert body["device_id"] == user.device_id


async def test_logout_invalidates_the_token_and_removes_the_device(hs: MatrixClient) -> None:
    user = await hs.register()
    laptop = await hs.login(user)
    await hs.ok("POST", "logout", {}, user=laptop)
    _assert_unknown_token(await hs.request("GET", "account/whoami", user=laptop))
    assert await _device_ids(hs, user) == {user.device_id}
    # The other session is unaffected.
    await hs.ok("GET", "account/whoami", user=user)


async def test_logout_all_invalidates_every_token(hs: MatrixClient) -> None:
    user = await hs.register()
    others = [await hs.login(user) for _ in range(2)]
    await hs.ok("POST", "logout/all", {}, user=others[0])
    for session in [user, *others]:
        _assert_unknown_token(await hs.request("GET", "account/whoami", user=session))
    fresh = await hs.login(user)
    assert await _device_ids(hs, fresh) == {fresh.device_id}


# --- password change ----------------------------------------------------------------


async def test_password_change_requires_the_current_password(hs: MatrixClient) -> None:
    user = await hs.register(password="old password")
    other = await hs.login(user)

    first = await hs.request(
        "POST", "account/password", {"new_password": "new password"}, user=user
    )
    assert first.status == 401
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]
    session = first.body["session"]

    wrong = await hs.request(
        "POST",
        "account/password",
        {"new_password": "new password", "auth": _password_auth(user, "guess", session)},
        user=user,
    )
    assert wrong.status == 401
    assert wrong.errcode == "M_FORBIDDEN"
    assert wrong.body["flows"] == [{"stages": ["m.login.password"]}]
    assert wrong.body["session"] == session

    await hs.ok(
        "POST",
        "account/password",
        {"new_password": "new password", "auth": _password_auth(user, session=session)},
        user=user,
    )
    old = await hs.request(
        "POST",
        "login",
        {"type": "m.login.password", "user": user.user_id, "password": "old password"},
    )
    assert old.status == 403
    await hs.ok(
        "POST",
        "login",
        {"type": "m.login.password", "user": user.user_id, "password": "new password"},
    )
    # By default the other devices are logged out; the caller's stays.
    _assert_unknown_token(await hs.request("GET", "account/whoami", user=other))
    await hs.ok("GET", "account/whoami", user=user)
    assert other.device_id not in await _device_ids(hs, user)


async def test_password_change_can_keep_other_devices(hs: MatrixClient) -> None:
    user = await hs.register(password="old password")
    other = await hs.login(user)
    await hs.ok(
        "POST",
        "account/password",
        {"new_password": "new", "logout_devices": False, "auth": _password_auth(user)},
        user=user,
    )
    await hs.ok("GET", "account/whoami", user=other)
    assert other.device_id in await _device_ids(hs, user)


async def test_password_change_refuses_a_weak_new_password(start_app: AppFactory) -> None:
    hs = await start_app(registration={"min_password_length": 8})
    user = await hs.register(password="long enough")
    reply = await hs.request(
        "POST",
        "account/password",
        {"new_password": "short", "auth": _password_auth(user)},
        user=user,
    )
    assert reply.status == 400
    assert reply.errcode == "M_WEAK_PASSWORD"


# --- devices ------------------------------------------------------------------------


async def test_devices_can_be_listed_read_and_renamed(hs: MatrixClient) -> None:
    user = await hs.register()
    other = await hs.login(user, initial_device_display_name="Tablet")
    assert await _device_ids(hs, user) == {user.device_id, other.device_id}

    device = await hs.ok("GET", f"devices/{other.device_id}", user=user)
    assert device["device_id"] == other.device_id
    assert device["display_name"] == "Tablet"

    await hs.ok("PUT", f"devices/{other.device_id}", {"display_name": "Kitchen tablet"}, user=user)
    renamed = await hs.ok("GET", f"devices/{other.device_id}", user=user)
    assert renamed["display_name"] == "Kitchen tablet"
    listed = await hs.ok("GET", "devices", user=user)
    names = {d["device_id"]: d.get("display_name") for d in listed["devices"]}
    assert names[other.device_id] == "Kitchen tablet"


async def test_unknown_device_is_not_found(hs: MatrixClient) -> None:
    user = await hs.register()
    for method, body in [("GET", None), ("PUT", {"display_name": "x"}), ("DELETE", {})]:
        reply = await hs.request(method, "devices/NOSUCHDEVICE", body, user=user)
        assert reply.status == 404, (method, reply)
        assert reply.errcode == "M_NOT_FOUND"


async def test_another_users_device_is_not_visible(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    reply = await hs.request("GET", f"devices/{bob.device_id}", user=alice)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_deleting_a_device_needs_the_password_then_logs_it_out(hs: MatrixClient) -> None:
    user = await hs.register()
    other = await hs.login(user)

    first = await hs.request("DELETE", f"devices/{other.device_id}", user=user)
    assert first.status == 401
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]
    await hs.ok("GET", "account/whoami", user=other)

    wrong = await hs.request(
        "DELETE",
        f"devices/{other.device_id}",
        {"auth": _password_auth(user, "nope", first.body["session"])},
        user=user,
    )
    assert wrong.status == 401
    assert wrong.errcode == "M_FORBIDDEN"

    await hs.ok(
        "DELETE",
        f"devices/{other.device_id}",
        {"auth": _password_auth(user, session=first.body["session"])},
        user=user,
    )
    _assert_unknown_token(await hs.request("GET", "account/whoami", user=other))
    assert await _device_ids(hs, user) == {user.device_id}


async def test_delete_devices_removes_several_at_once(hs: MatrixClient) -> None:
    user = await hs.register()
    others = [await hs.login(user) for _ in range(3)]
    doomed = [others[0].device_id, others[1].device_id]

    first = await hs.request("POST", "delete_devices", {"devices": doomed}, user=user)
    assert first.status == 401
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]

    await hs.ok(
        "POST", "delete_devices", {"devices": doomed, "auth": _password_auth(user)}, user=user
    )
    for session in others[:2]:
        _assert_unknown_token(await hs.request("GET", "account/whoami", user=session))
    await hs.ok("GET", "account/whoami", user=others[2])
    assert await _device_ids(hs, user) == {user.device_id, others[2].device_id}


async def test_password_auth_for_another_user_is_refused(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register(password="bobs password")
    alice_other = await hs.login(alice)
    # Bob's correct credentials do not authorise deleting Alice's device: a 403 (as
    # Synapse and complement's "requires UI auth user to match device owner"), not a
    # 401 inviting another try.
    reply = await hs.request(
        "DELETE",
        f"devices/{alice_other.device_id}",
        {"auth": _password_auth(bob)},
        user=alice,
    )
    assert reply.status == 403, reply
    assert reply.errcode == "M_FORBIDDEN"
    await hs.ok("GET", "account/whoami", user=alice_other)
    assert alice_other.device_id in await _device_ids(hs, alice)
    # Bob's wrong password is just a wrong password: the 401 to try again.
    wrong = await hs.request(
        "DELETE",
        f"devices/{alice_other.device_id}",
        {"auth": _password_auth(bob, "not bobs")},
        user=alice,
    )
    assert wrong.status == 401, wrong
    assert wrong.errcode == "M_FORBIDDEN"


# --- secrets at rest ------------------------------------------------------------------


async def test_passwords_and_tokens_are_stored_hashed(hs: MatrixClient, run_dsn: str) -> None:
    password = "a very memorable password " + secrets.token_hex(4)
    user = await hs.register(password=password)
    conn = await asyncpg.connect(run_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM user_passwords WHERE user_id = $1", user.user_id
        )
        token_rows = await conn.fetch(
            "SELECT * FROM access_tokens WHERE user_id = $1", user.user_id
        )
    finally:
        await conn.close()
    assert stored.startswith("scrypt$")
    assert password not in stored
    assert token_rows
    for row in token_rows:
        for value in row.values():
            assert user.token not in str(value)


async def test_passwords_hashed_at_one_cost_still_log_in_after_the_cost_changes(
    start_app: AppFactory, fresh_dsn: str
) -> None:
    """Production hashes at scrypt N = 2**14 (the default); each hash keeps its own N, so
    raising or lowering registration.password_hash_cost locks no one out."""
    production = await start_app(dsn=fresh_dsn, registration={"password_hash_cost": 14})
    old = await production.register()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM user_passwords WHERE user_id = $1", old.user_id
        )
    finally:
        await conn.close()
    assert stored.startswith("scrypt$16384$8$1$")
    cheaper = await start_app(dsn=fresh_dsn, registration={"password_hash_cost": 8})
    assert (await cheaper.login(old)).user_id == old.user_id
    new = await cheaper.register()
    assert (await production.login(new)).user_id == new.user_id
    wrong = await production.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": new.user_id},
            "password": "not it",
        },
    )
    assert (wrong.status, wrong.errcode) == (403, "M_FORBIDDEN")
