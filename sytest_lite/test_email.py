"""Email addresses (the spec's 3PID API) and email notifications, over HTTP only, with
the suite's own SMTP server as the mailbox (sytest_lite/mailbox.py)."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from sytest_lite.client import DEFAULT_PASSWORD, Api, Registered, assert_error, fresh_username
from sytest_lite.mailbox import Mailbox, link_in, text_of

EMAIL_STAGE = "m.login.email.identity"


def fresh_address() -> str:
    return f"sytest.{secrets.token_hex(5)}@example.com"


async def request_token(
    api: Api, endpoint: str, address: str, secret: str, attempt: int = 1
) -> tuple[int, dict[str, object]]:
    status, body = await api.request(
        "POST",
        f"/{endpoint}/email/requestToken",
        json={"client_secret": secret, "email": address, "send_attempt": attempt},
    )
    assert isinstance(body, dict)
    return status, body


async def follow(api: Api, link: str) -> int:
    parts = urlsplit(link)
    response = await api.request_full("GET", parts.path + "?" + parts.query)
    return response.status


async def validated(api: Api, mailbox: Mailbox, endpoint: str, address: str) -> dict[str, str]:
    secret = "sytest" + secrets.token_hex(6)
    before = len(mailbox.to(address))
    status, body = await request_token(api, endpoint, address, secret)
    assert status == 200, body
    message = await mailbox.wait_for(address, before + 1)
    assert await follow(api, link_in(message, "/validate")) == 200
    return {"sid": str(body["sid"]), "client_secret": secret}


async def register_with_email(api: Api, mailbox: Mailbox, address: str) -> Registered:
    creds = await validated(api, mailbox, "register", address)
    request = {"username": fresh_username(), "password": DEFAULT_PASSWORD}
    status, challenge = await api.request("POST", "/register", json=request)
    assert status == 401, challenge
    assert isinstance(challenge, dict)
    assert any(flow["stages"] == [EMAIL_STAGE] for flow in challenge["flows"]), challenge
    status, body = await api.request(
        "POST",
        "/register",
        json={
            "auth": {
                "type": EMAIL_STAGE,
                "threepid_creds": creds,
                "session": challenge["session"],
            }
        },
    )
    assert status == 200, body
    assert isinstance(body, dict)
    return Registered(body["user_id"], body["access_token"], body["device_id"])


async def login_by_email(api: Api, address: str) -> tuple[int, object]:
    return await api.request(
        "POST",
        "/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
            "password": DEFAULT_PASSWORD,
        },
    )


async def test_register_by_email_then_log_in_with_the_address(api: Api, mailbox: Mailbox) -> None:
    address = fresh_address()
    user = await register_with_email(api, mailbox, address)
    status, body = await api.request("GET", "/account/3pid", token=user.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    assert [(t["medium"], t["address"]) for t in body["threepids"]] == [("email", address)]
    status, body = await login_by_email(api, address.upper())
    assert status == 200, body
    assert isinstance(body, dict) and body["user_id"] == user.user_id


async def test_same_send_attempt_gives_same_sid_and_one_email(api: Api, mailbox: Mailbox) -> None:
    address, secret = fresh_address(), "sytest" + secrets.token_hex(6)
    first = await request_token(api, "register", address, secret)
    again = await request_token(api, "register", address, secret)
    assert first[0] == again[0] == 200
    assert first[1]["sid"] == again[1]["sid"]
    await mailbox.wait_for(address)
    await asyncio.sleep(0.5)
    assert len(mailbox.to(address)) == 1


async def test_request_token_refuses_a_malformed_address(api: Api) -> None:
    status, body = await request_token(api, "register", "not an address", "sytestsecret")
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_a_taken_address_is_in_use(api: Api, mailbox: Mailbox) -> None:
    address = fresh_address()
    await register_with_email(api, mailbox, address)
    status, body = await request_token(api, "register", address, "sytestsecret2")
    assert_error(status, body, 400, "M_THREEPID_IN_USE")


async def test_password_reset_by_email(api: Api, mailbox: Mailbox) -> None:
    address = fresh_address()
    user = await register_with_email(api, mailbox, address)
    creds = await validated(api, mailbox, "account/password", address)
    status, challenge = await api.request(
        "POST", "/account/password", json={"new_password": "a new password"}
    )
    assert status == 401, challenge
    assert isinstance(challenge, dict)
    status, body = await api.request(
        "POST",
        "/account/password",
        json={
            "auth": {"type": EMAIL_STAGE, "threepid_creds": creds, "session": challenge["session"]}
        },
    )
    assert status == 200, body
    status, _ = await api.request("GET", "/account/whoami", token=user.access_token)
    assert status == 401  # logout_devices defaults to true
    status, body = await api.login(user.user_id, "a new password")
    assert status == 200, body


async def test_add_and_delete_an_address(api: Api, mailbox: Mailbox, alice: Registered) -> None:
    address = fresh_address()
    creds = await validated(api, mailbox, "account/3pid", address)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": DEFAULT_PASSWORD,
    }
    status, body = await api.request(
        "POST", "/account/3pid/add", json={**creds, "auth": auth}, token=alice.access_token
    )
    assert status == 200, body
    status, body = await api.request(
        "POST",
        "/account/3pid/delete",
        json={"medium": "email", "address": address},
        token=alice.access_token,
    )
    assert status == 200, body
    status, body = await api.request("GET", "/account/3pid", token=alice.access_token)
    assert body == {"threepids": []}, body


async def test_capabilities_allow_3pid_changes(api: Api, alice: Registered) -> None:
    status, body = await api.request("GET", "/capabilities", token=alice.access_token)
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["capabilities"]["m.3pid_changes"] == {"enabled": True}


async def test_missed_messages_are_emailed(api: Api, mailbox: Mailbox, alice: Registered) -> None:
    address = fresh_address()
    bob = await register_with_email(api, mailbox, address)
    status, body = await api.request(
        "POST",
        "/pushers/set",
        json={
            "kind": "email",
            "app_id": "m.email",
            "pushkey": address,
            "app_display_name": "Email",
            "device_display_name": address,
            "lang": "en",
            "data": {},
        },
        token=bob.access_token,
    )
    assert status == 200, body
    status, body = await api.request(
        "POST", "/createRoom", json={"preset": "public_chat"}, token=alice.access_token
    )
    assert isinstance(body, dict)
    room = body["room_id"]
    status, body = await api.request("POST", f"/join/{room}", json={}, token=bob.access_token)
    assert status == 200, body
    before = len(mailbox.to(address))
    status, body = await api.request(
        "PUT",
        f"/rooms/{room}/send/m.room.message/{secrets.token_hex(4)}",
        json={"msgtype": "m.text", "body": "did you see this?"},
        token=alice.access_token,
    )
    assert status == 200, body
    message = await mailbox.wait_for(address, before + 1)
    assert "did you see this?" in text_of(message)
    assert "/unsubscribe?" in text_of(message)
