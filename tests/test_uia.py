"""User-interactive auth sessions over HTTP (issue 14, item 9): what a session remembers,
what it may not change, and registration retried within one."""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from typing import Any

from tests.matrix import MatrixClient, User

DUMMY = {"type": "m.login.dummy"}


def _name() -> str:
    return "uia_" + secrets.token_hex(5)


def _password_auth(user: User, session: str | None = None, password: str | None = None) -> Any:
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password if password is None else password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def _session(hs: MatrixClient, method: str, path: str, body: Any, **kwargs: Any) -> str:
    reply = await hs.request(method, path, body, **kwargs)
    assert reply.status == 401, reply
    return str(reply.body["session"])


async def _log_in(hs: MatrixClient, user: str, password: str) -> dict[str, Any]:
    return dict(
        await hs.ok(
            "POST",
            "login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
            },
        )
    )


# --- registration -----------------------------------------------------------------


async def test_registration_remembers_the_parameters_of_its_first_request(
    hs: MatrixClient,
) -> None:
    name = _name()
    session = await _session(
        hs,
        "POST",
        "register",
        {
            "username": name,
            "password": "s3kr1t pass",
            "device_id": "XYZZY",
            "initial_device_display_name": "the display name",
            "inhibit_login": True,
        },
    )
    # The session is completed by a request that carries nothing but the auth.
    done = await hs.ok("POST", "register", {"auth": {**DUMMY, "session": session}})
    assert done["user_id"] == f"@{name}:localhost"
    assert "access_token" not in done  # inhibit_login was remembered
    assert "device_id" not in done
    # The password was remembered too.
    logged_in = await _log_in(hs, name, "s3kr1t pass")
    assert logged_in["user_id"] == f"@{name}:localhost"


async def test_registration_remembers_the_device_of_its_first_request(hs: MatrixClient) -> None:
    name = _name()
    session = await _session(
        hs,
        "POST",
        "register",
        {"username": name, "password": "pw", "device_id": "MYPHONE"},
    )
    done = await hs.ok("POST", "register", {"auth": {**DUMMY, "session": session}})
    assert done["device_id"] == "MYPHONE"
    devices = await hs.ok("GET", "devices", token=done["access_token"])
    assert [device["device_id"] for device in devices["devices"]] == ["MYPHONE"]


async def test_registration_retried_in_its_session_is_idempotent_with_a_username(
    hs: MatrixClient,
) -> None:
    name = _name()
    body = {"username": name, "password": "pw"}
    session = await _session(hs, "POST", "register", body)
    first = await hs.ok("POST", "register", {**body, "auth": {**DUMMY, "session": session}})
    # The answer was lost; the client sends the same request again.
    again = await hs.ok("POST", "register", {**body, "auth": {**DUMMY, "session": session}})
    assert again["user_id"] == first["user_id"] == f"@{name}:localhost"
    await hs.ok("GET", "account/whoami", token=again["access_token"])


async def test_registration_retried_in_its_session_is_idempotent_without_a_username(
    hs: MatrixClient,
) -> None:
    body = {"password": "pw"}
    session = await _session(hs, "POST", "register", body)
    first = await hs.ok("POST", "register", {**body, "auth": {**DUMMY, "session": session}})
    again = await hs.ok("POST", "register", {"auth": {**DUMMY, "session": session}})
    assert again["user_id"] == first["user_id"]
    whoami = await hs.ok("GET", "account/whoami", token=again["access_token"])
    assert whoami["user_id"] == first["user_id"]


async def test_registrations_retried_at_once_in_one_session_create_one_account(
    hs: MatrixClient,
) -> None:
    body = {"password": "pw"}
    session = await _session(hs, "POST", "register", body)
    replies = await asyncio.gather(
        *(
            hs.request("POST", "register", {**body, "auth": {**DUMMY, "session": session}})
            for _ in range(5)
        )
    )
    assert [reply.status for reply in replies] == [200] * 5, replies
    assert len({reply.body["user_id"] for reply in replies}) == 1


async def test_another_registration_session_cannot_take_a_registered_name(
    hs: MatrixClient,
) -> None:
    name = _name()
    body = {"username": name, "password": "pw"}
    session = await _session(hs, "POST", "register", body)
    await hs.ok("POST", "register", {**body, "auth": {**DUMMY, "session": session}})
    other = await hs.request("POST", "register", {**body, "auth": DUMMY})
    assert other.status == 400
    assert other.errcode == "M_USER_IN_USE"


async def test_capitals_in_a_requested_username_are_lowered(hs: MatrixClient) -> None:
    name = _name()
    done = await hs.ok(
        "POST", "register", {"username": name.upper(), "password": "pw", "auth": DUMMY}
    )
    assert done["user_id"] == f"@{name}:localhost"
    # Login takes either spelling.
    assert (await _log_in(hs, name.upper(), "pw"))["user_id"] == done["user_id"]


async def test_non_ascii_passwords_register_and_log_in(hs: MatrixClient) -> None:
    name = _name()
    password = "пароль ñandú 密码 🔑"
    await hs.ok("POST", "register", {"username": name, "password": password, "auth": DUMMY})
    assert (await _log_in(hs, name, password))["user_id"] == f"@{name}:localhost"
    # The same accented letters typed as a letter and a combining accent are the same
    # password (Unicode NFKC, as Synapse).
    decomposed = unicodedata.normalize("NFD", password)
    assert decomposed != password
    assert (await _log_in(hs, name, decomposed))["user_id"] == f"@{name}:localhost"
    wrong = await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": "пароль",
        },
    )
    assert wrong.status == 403


async def test_non_ascii_password_change_through_uia(hs: MatrixClient) -> None:
    user = await hs.register(password="première clé")
    await hs.ok(
        "POST",
        "account/password",
        {"new_password": "deuxième clé ✓", "auth": _password_auth(user)},
        user=user,
    )
    await _log_in(hs, user.user_id, "deuxième clé ✓")


# --- the operation of a session ---------------------------------------------------------


async def test_a_session_cannot_change_its_operation(hs: MatrixClient) -> None:
    user = await hs.register()
    first = await hs.login(user)
    second = await hs.login(user)
    session = await _session(hs, "DELETE", f"devices/{first.device_id}", {}, user=user)
    # The session was for deleting the first device: not the second.
    reply = await hs.request(
        "DELETE",
        f"devices/{second.device_id}",
        {"auth": _password_auth(user, session)},
        user=user,
    )
    assert reply.status == 403, reply
    assert reply.errcode == "M_FORBIDDEN"
    # Nor for another endpoint.
    password = await hs.request(
        "POST",
        "account/password",
        {"new_password": "hijacked", "auth": _password_auth(user, session)},
        user=user,
    )
    assert password.status == 403, password
    await hs.ok("GET", "account/whoami", user=second)
    await hs.login(user)  # the password is unchanged
    # The session still does what it was opened for.
    await hs.ok(
        "DELETE",
        f"devices/{first.device_id}",
        {"auth": _password_auth(user, session)},
        user=user,
    )
    gone = await hs.request("GET", "account/whoami", user=first)
    assert gone.status == 401


async def test_a_registration_session_cannot_authorise_another_operation(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    other = await hs.login(user)
    session = await _session(hs, "POST", "register", {"password": "pw"})
    reply = await hs.request(
        "DELETE",
        f"devices/{other.device_id}",
        {"auth": _password_auth(user, session)},
        user=user,
    )
    assert reply.status == 403, reply


async def test_another_users_session_is_refused(hs: MatrixClient) -> None:
    alice, bob = await hs.register(), await hs.register()
    alice_phone = await hs.login(alice)
    session = await _session(hs, "POST", "account/password", {"new_password": "x"}, user=bob)
    reply = await hs.request(
        "POST",
        "account/password",
        {"new_password": "x", "auth": _password_auth(alice, session)},
        user=alice,
    )
    assert reply.status == 403, reply
    await hs.ok("GET", "account/whoami", user=alice_phone)


async def test_password_change_completed_by_a_request_with_only_auth(hs: MatrixClient) -> None:
    user = await hs.register()
    phone = await hs.login(user)
    session = await _session(
        hs,
        "POST",
        "account/password",
        {"new_password": "the new one", "logout_devices": False},
        user=user,
    )
    await hs.ok("POST", "account/password", {"auth": _password_auth(user, session)}, user=user)
    await _log_in(hs, user.user_id, "the new one")
    # logout_devices: false was remembered: the other device is still logged in.
    await hs.ok("GET", "account/whoami", user=phone)


async def test_delete_devices_completed_by_a_request_with_only_auth(hs: MatrixClient) -> None:
    user = await hs.register()
    phone = await hs.login(user)
    session = await _session(
        hs, "POST", "delete_devices", {"devices": [phone.device_id]}, user=user
    )
    await hs.ok("POST", "delete_devices", {"auth": _password_auth(user, session)}, user=user)
    gone = await hs.request("GET", "account/whoami", user=phone)
    assert gone.status == 401


async def test_a_completed_session_does_not_authorise_the_operation_twice(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    session = await _session(hs, "POST", "account/password", {"new_password": "one"}, user=user)
    await hs.ok(
        "POST",
        "account/password",
        {"new_password": "one", "auth": _password_auth(user, session)},
        user=user,
    )
    # Replaying the session (password now "one") without a stage is a new challenge.
    replay = await hs.request(
        "POST", "account/password", {"new_password": "two", "auth": {"session": session}}, user=user
    )
    assert replay.status == 401, replay
    assert replay.body["session"] != session
    await _log_in(hs, user.user_id, "one")


async def test_a_wrong_password_keeps_the_session_and_says_what_is_completed(
    hs: MatrixClient,
) -> None:
    user = await hs.register()
    phone = await hs.login(user)
    session = await _session(hs, "DELETE", f"devices/{phone.device_id}", {}, user=user)
    wrong = await hs.request(
        "DELETE",
        f"devices/{phone.device_id}",
        {"auth": _password_auth(user, session, "wrong")},
        user=user,
    )
    assert wrong.status == 401
    assert wrong.errcode == "M_FORBIDDEN"
    assert wrong.body["session"] == session
    assert wrong.body["completed"] == []
    assert wrong.body["flows"] == [{"stages": ["m.login.password"]}]
    await hs.ok(
        "DELETE", f"devices/{phone.device_id}", {"auth": _password_auth(user, session)}, user=user
    )
