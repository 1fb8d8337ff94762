"""Email addresses over HTTP with a real SMTP server: sign-up, login, password reset,
3pid add and delete, tokens, errors and limits (issue 16)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema

from homeserver.config import RateLimit
from tests.conftest import AppFactory
from tests.mail_server import (
    MailServer,
    code_in,
    email_pusher,
    follow,
    html_of,
    link_in,
    mail_server,
)
from tests.matrix import MatrixClient, User
from tests.processes import ServerProcess, run_homeserver

__all__ = ["mail_server"]  # the fixture

EMAIL_STAGE = "m.login.email.identity"
SCHEMA_TEXT = (
    Path(__file__).resolve().parent.parent / "spec/events/com.linkchat.account.threepid.json"
).read_text()


def _address() -> str:
    return f"user.{secrets.token_hex(4)}@example.com"


def _secret() -> str:
    return "secret" + secrets.token_hex(8)


async def _email_app(start_app: AppFactory, mail: MailServer, **overrides: Any) -> MatrixClient:
    registration = {"require_email": "optional", **overrides.pop("registration", {})}
    return await start_app(
        email=mail.settings(**overrides.pop("email", {})), registration=registration, **overrides
    )


async def _request_token(
    hs: MatrixClient, endpoint: str, address: str, secret: str, attempt: int = 1, **extra: Any
) -> Any:
    return await hs.request(
        "POST",
        f"{endpoint}/email/requestToken",
        {"client_secret": secret, "email": address, "send_attempt": attempt, **extra},
    )


async def _validated(
    hs: MatrixClient, mail: MailServer, endpoint: str, address: str, delivered_to: str = ""
) -> dict[str, str]:
    """Request a token for `address` and follow the link of the email: threepid_creds."""
    secret = _secret()
    delivered_to = delivered_to or address
    before = len(mail.inbox.to(delivered_to))
    reply = await _request_token(hs, endpoint, address, secret)
    assert reply.status == 200, reply
    message = await mail.inbox.wait_for(delivered_to, before + 1)
    status, page = await follow(hs, link_in(message, "/validate"))
    assert status == 200, page
    assert "confirmed" in page
    return {"sid": reply.body["sid"], "client_secret": secret}


async def _register_with_email(
    hs: MatrixClient,
    mail: MailServer,
    address: str,
    password: str = "pw for email",
    delivered_to: str = "",
) -> User:
    creds = await _validated(hs, mail, "register", address, delivered_to)
    body = {"username": "em_" + secrets.token_hex(5), "password": password}
    first = await hs.request("POST", "register", body)
    assert first.status == 401
    done = await hs.ok(
        "POST",
        "register",
        {
            **body,
            "auth": {
                "type": EMAIL_STAGE,
                "threepid_creds": creds,
                "session": first.body["session"],
            },
        },
    )
    return User(done["user_id"], done["access_token"], done["device_id"], password)


def _password_auth(user: User) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    }


async def _login_by_email(hs: MatrixClient, address: str, password: str) -> Any:
    return await hs.request(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
            "password": password,
        },
    )


# --- sign-up ----------------------------------------------------------------------------


async def test_register_by_email_following_the_link_in_the_mail(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server, registration={"require_email": "required"})
    probe = await hs.request("POST", "register", {})
    assert probe.body["flows"] == [{"stages": [EMAIL_STAGE]}]
    # Without the email stage, no account.
    dummy = await hs.request(
        "POST", "register", {"password": "pw", "auth": {"type": "m.login.dummy"}}
    )
    assert dummy.status == 401

    address = _address()
    secret = _secret()
    token = await _request_token(hs, "register", address, secret)
    assert token.status == 200, token
    assert token.body["submit_url"].endswith("/_linkchat/client/email/submit_token")
    message = await mail_server.inbox.wait_for(address)
    assert "Confirm your email address" in str(message["Subject"])
    assert code_in(message) in html_of(message)
    body = {"username": "em_" + secrets.token_hex(5), "password": "pw"}
    # Before the link is followed, the stage is not complete.
    creds = {"sid": token.body["sid"], "client_secret": secret}
    early = await hs.request(
        "POST", "register", {**body, "auth": {"type": EMAIL_STAGE, "threepid_creds": creds}}
    )
    assert early.status == 401
    assert early.body["errcode"] == "M_THREEPID_AUTH_FAILED"
    status, page = await follow(hs, link_in(message, "/validate"))
    assert status == 200
    assert "Your email address is confirmed" in page
    done = await hs.ok(
        "POST",
        "register",
        {"auth": {"type": EMAIL_STAGE, "threepid_creds": creds, "session": early.body["session"]}},
    )
    user = User(done["user_id"], done["access_token"], done["device_id"], "pw")
    assert done["user_id"] == f"@{body['username']}:localhost"
    listed = await hs.ok("GET", "account/3pid", user=user)
    assert [(t["medium"], t["address"]) for t in listed["threepids"]] == [("email", address)]
    capabilities = await hs.ok("GET", "capabilities", user=user)
    assert capabilities["capabilities"]["m.3pid_changes"] == {"enabled": True}


async def test_the_code_can_be_submitted_at_the_submit_url(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    secret = _secret()
    token = await _request_token(hs, "register", address, secret)
    code = code_in(await mail_server.inbox.wait_for(address))
    wrong = await hs.request(
        "POST",
        "/_linkchat/client/email/submit_token",
        {"sid": token.body["sid"], "client_secret": secret, "token": "AAAAAAAA"},
    )
    assert wrong.status == 400
    assert wrong.errcode == "M_THREEPID_AUTH_FAILED"
    right = await hs.ok(
        "POST",
        "/_linkchat/client/email/submit_token",
        {"sid": token.body["sid"], "client_secret": secret, "token": code.lower()},
    )
    assert right == {"success": True}


async def test_the_same_send_attempt_gives_the_same_sid_and_sends_one_email(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address, secret = _address(), _secret()
    first = await _request_token(hs, "register", address, secret, 1)
    again = await _request_token(hs, "register", address, secret, 1)
    assert first.status == again.status == 200
    assert first.body["sid"] == again.body["sid"]
    await mail_server.inbox.wait_for(address)
    await asyncio.sleep(0.3)
    assert len(mail_server.inbox.to(address)) == 1
    # A later attempt sends a new email in the same session; the old code is dead.
    later = await _request_token(hs, "register", address, secret, 2)
    assert later.body["sid"] == first.body["sid"]
    second = await mail_server.inbox.wait_for(address, 2)
    old_status, _ = await follow(hs, link_in(mail_server.inbox.to(address)[0], "/validate"))
    assert old_status == 400
    new_status, _ = await follow(hs, link_in(second, "/validate"))
    assert new_status == 200


async def test_a_used_link_does_not_work_twice(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    await _request_token(hs, "register", address, _secret())
    link = link_in(await mail_server.inbox.wait_for(address), "/validate")
    assert (await follow(hs, link))[0] == 200
    status, page = await follow(hs, link)
    assert status == 400
    assert "already used" in page


async def test_an_expired_link_does_not_work(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server, email={"token_lifetime_seconds": 1})
    address = _address()
    await _request_token(hs, "register", address, _secret())
    link = link_in(await mail_server.inbox.wait_for(address), "/validate")
    await asyncio.sleep(1.5)
    status, page = await follow(hs, link)
    assert status == 400
    assert "expired" in page


async def test_an_address_in_use_cannot_sign_up_again(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    await _register_with_email(hs, mail_server, address)
    # Spelled with capitals and spaces: the same address.
    reply = await _request_token(hs, "register", f"  {address.upper()} ", _secret())
    assert reply.status == 400
    assert reply.errcode == "M_THREEPID_IN_USE"


async def test_two_sign_ups_with_one_address_make_one_account(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    # Both validated before either signs up: the append lock decides.
    creds = [await _validated(hs, mail_server, "register", address) for _ in range(2)]
    replies = await asyncio.gather(
        *(
            hs.request(
                "POST",
                "register",
                {
                    "username": "em_" + secrets.token_hex(5),
                    "password": "pw",
                    "auth": {"type": EMAIL_STAGE, "threepid_creds": c},
                },
            )
            for c in creds
        )
    )
    assert sorted(r.status for r in replies) == [200, 400], replies
    assert [r.errcode for r in replies if r.status == 400] == ["M_THREEPID_IN_USE"]


async def test_malformed_addresses_are_invalid_params(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    for bad in ["no-at-sign", "two@@example.com", "a b@example.com", "x@-bad-.com", "@example.com"]:
        reply = await _request_token(hs, "register", bad, _secret())
        assert reply.status == 400, (bad, reply)
        assert reply.errcode == "M_INVALID_PARAM", (bad, reply)
    assert mail_server.inbox.messages == []


async def test_internationalised_domains_are_normalised(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    local = "Ünï." + secrets.token_hex(3)
    normalised = f"{local.casefold()}@xn--bcher-kva.example"
    user = await _register_with_email(
        hs, mail_server, f" {local}@Bücher.example ", delivered_to=normalised
    )
    listed = await hs.ok("GET", "account/3pid", user=user)
    assert listed["threepids"][0]["address"] == normalised
    reply = await _login_by_email(hs, f"{local.upper()}@BÜCHER.example", user.password)
    assert reply.status == 200, reply


async def test_domains_not_allowed_are_denied(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(
        start_app, mail_server, registration={"allowed_email_domains": ["example.org"]}
    )
    reply = await _request_token(hs, "register", _address(), _secret())
    assert reply.status == 403
    assert reply.errcode == "M_THREEPID_DENIED"
    allowed = await _request_token(
        hs, "register", f"a{secrets.token_hex(3)}@example.org", _secret()
    )
    assert allowed.status == 200, allowed


async def test_registration_by_email_is_denied_when_off(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server, registration={"require_email": "off"})
    reply = await _request_token(hs, "register", _address(), _secret())
    assert reply.status == 403
    assert reply.errcode == "M_THREEPID_DENIED"
    closed = await _email_app(start_app, mail_server, registration={"enabled": False})
    refused = await _request_token(closed, "register", _address(), _secret())
    assert refused.status == 403
    assert refused.errcode == "M_FORBIDDEN"
    assert mail_server.inbox.messages == []


# --- the mail server ----------------------------------------------------------------------


async def test_a_refusing_mail_server_gives_a_clear_error_and_no_session(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    mail_server.inbox.refuse = True
    address, secret = _address(), _secret()
    reply = await _request_token(hs, "register", address, secret)
    assert reply.status == 500
    assert reply.errcode == "M_UNKNOWN"
    assert "could not be sent" in reply.body["error"]
    # Nothing half-made: the same attempt, once the server takes mail, sends it.
    mail_server.inbox.refuse = False
    again = await _request_token(hs, "register", address, secret)
    assert again.status == 200
    await mail_server.inbox.wait_for(address)


async def test_an_unreachable_mail_server_gives_a_clear_error(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    # A port nobody listens on.
    hs = await start_app(
        email={**mail_server.settings(), "smtp_port": 1, "smtp_timeout_seconds": 5.0},
        registration={"require_email": "optional"},
    )
    reply = await _request_token(hs, "register", _address(), _secret())
    assert reply.status == 500
    assert "could not be sent" in reply.body["error"]


async def test_without_a_mail_server_the_email_is_logged(
    start_app: AppFactory, caplog: Any
) -> None:
    hs = await start_app(registration={"require_email": "optional"})
    address = _address()
    caplog.set_level("INFO", logger="homeserver.email.mailer")
    reply = await _request_token(hs, "register", address, _secret())
    assert reply.status == 200, reply
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"To: {address}" in logged
    assert "/_linkchat/client/email/validate?" in logged


# --- login, password reset ----------------------------------------------------------------


async def test_login_by_email_with_the_identifier_and_the_legacy_fields(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    reply = await _login_by_email(hs, address.upper(), user.password)
    assert reply.status == 200, reply
    assert reply.body["user_id"] == user.user_id
    legacy = await hs.ok(
        "POST",
        "login",
        {
            "type": "m.login.password",
            "medium": "email",
            "address": address,
            "password": user.password,
        },
    )
    assert legacy["user_id"] == user.user_id
    wrong = await _login_by_email(hs, address, "not it")
    assert wrong.status == 403
    unknown = await _login_by_email(hs, _address(), user.password)
    assert unknown.status == 403
    assert unknown.errcode == "M_FORBIDDEN"


async def _reset(
    hs: MatrixClient, mail: MailServer, address: str, new_password: str, **extra: Any
) -> dict[str, str]:
    creds = await _validated(hs, mail, "account/password", address)
    first = await hs.request("POST", "account/password", {"new_password": new_password, **extra})
    assert first.status == 401, first
    assert first.body["flows"] == [{"stages": [EMAIL_STAGE]}]
    await hs.ok(
        "POST",
        "account/password",
        {
            "auth": {
                "type": EMAIL_STAGE,
                "threepid_creds": creds,
                "session": first.body["session"],
            }
        },
    )
    return creds


async def test_password_reset_by_email_logs_out_every_device(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    creds = await _reset(hs, mail_server, address, "brand new")
    assert (await hs.request("GET", "account/whoami", user=user)).status == 401
    assert (await _login_by_email(hs, address, user.password)).status == 403
    assert (await _login_by_email(hs, address, "brand new")).status == 200
    message = mail_server.inbox.to(address)[-1]
    assert "Reset your" in str(message["Subject"])
    # The same validation cannot reset the password a second time.
    again = await hs.request(
        "POST",
        "account/password",
        {"new_password": "hijack", "auth": {"type": EMAIL_STAGE, "threepid_creds": creds}},
    )
    assert again.status == 401
    assert again.errcode == "M_THREEPID_AUTH_FAILED"


async def test_password_reset_by_email_may_keep_the_devices(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    await _reset(hs, mail_server, address, "brand new", logout_devices=False)
    await hs.ok("GET", "account/whoami", user=user)
    assert (await _login_by_email(hs, address, "brand new")).status == 200


async def test_password_reset_for_an_unknown_address(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    reply = await _request_token(hs, "account/password", address, _secret())
    assert reply.status == 400
    assert reply.errcode == "M_THREEPID_NOT_FOUND"
    # The anti-enumeration switch: the same answer as for a known address, no email.
    quiet = await _email_app(
        start_app, mail_server, email={"request_token_inhibit_3pid_errors": True}
    )
    hidden = await _request_token(quiet, "account/password", address, _secret())
    assert hidden.status == 200
    assert isinstance(hidden.body["sid"], str)
    await asyncio.sleep(0.3)
    assert mail_server.inbox.to(address) == []


# --- 3pid add and delete ----------------------------------------------------------------


async def test_add_and_delete_an_address(start_app: AppFactory, mail_server: MailServer) -> None:
    hs = await _email_app(start_app, mail_server)
    user = await hs.register()
    address = _address()
    creds = await _validated(hs, mail_server, "account/3pid", address)
    first = await hs.request("POST", "account/3pid/add", creds, user=user)
    assert first.status == 401
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]
    await hs.ok(
        "POST",
        "account/3pid/add",
        {"auth": {**_password_auth(user), "session": first.body["session"]}},
        user=user,
    )
    listed = await hs.ok("GET", "account/3pid", user=user)
    assert [t["address"] for t in listed["threepids"]] == [address]
    assert (await _login_by_email(hs, address, user.password)).status == 200
    # Another account cannot take it.
    other = await hs.register()
    taken = await _request_token(hs, "account/3pid", address, _secret())
    assert taken.errcode == "M_THREEPID_IN_USE"
    del other

    deleted = await hs.ok(
        "POST", "account/3pid/delete", {"medium": "email", "address": address}, user=user
    )
    assert deleted == {"id_server_unbind_result": "no-support"}
    assert (await hs.ok("GET", "account/3pid", user=user))["threepids"] == []
    assert (await _login_by_email(hs, address, user.password)).status == 403


async def test_adding_needs_a_validated_session(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    user = await hs.register()
    address, secret = _address(), _secret()
    token = await _request_token(hs, "account/3pid", address, secret)
    reply = await hs.request(
        "POST",
        "account/3pid/add",
        {"sid": token.body["sid"], "client_secret": secret, "auth": _password_auth(user)},
        user=user,
    )
    assert reply.status == 400
    assert reply.errcode == "M_THREEPID_AUTH_FAILED"
    # A session validated for sign-up does not add an address.
    creds = await _validated(hs, mail_server, "register", _address())
    wrong_purpose = await hs.request(
        "POST", "account/3pid/add", {**creds, "auth": _password_auth(user)}, user=user
    )
    assert wrong_purpose.errcode == "M_THREEPID_AUTH_FAILED"


# --- limits --------------------------------------------------------------------------------


async def test_request_token_is_rate_limited_per_address_and_per_client(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(
        start_app,
        mail_server,
        rate_limits={
            "enabled": True,
            "threepid_token": RateLimit(per_second=0.001, burst=2),
        },
    )

    async def ask(address: str, client: str, secret: str = "") -> int:
        # The test client is a proxy on this machine (trusted): X-Forwarded-For names
        # the client whose IP address the per-client limit counts.
        reply = await hs.request(
            "POST",
            "register/email/requestToken",
            {"client_secret": secret or _secret(), "email": address, "send_attempt": 1},
            headers={"X-Forwarded-For": client},
        )
        return reply.status

    # Per address: three clients ask for one address; the third is refused.
    address = _address()
    assert [await ask(address, f"192.0.2.{n}") for n in (1, 2, 3)] == [200, 200, 429]
    assert len(mail_server.inbox.to(address)) == 2
    # Per client: one client asks for three addresses; the third is refused.
    assert [await ask(_address(), "198.51.100.7") for _ in range(3)] == [200, 200, 429]
    # A request repeated (same secret, address and send_attempt) sends nothing: free.
    repeated, secret = _address(), _secret()
    assert [await ask(repeated, "203.0.113.9", secret) for _ in range(4)] == [200] * 4
    assert len(mail_server.inbox.to(repeated)) == 1


# --- erasure ---------------------------------------------------------------------------------


async def test_a_removed_address_is_in_no_table_and_the_log_still_verifies(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str, data_dir: Path, tmp_path: Path
) -> None:
    hs = await _email_app(start_app, mail_server, dsn=fresh_dsn)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    second = _address()
    creds = await _validated(hs, mail_server, "account/3pid", second)
    await hs.ok("POST", "account/3pid/add", {**creds, "auth": _password_auth(user)}, user=user)
    # An email pusher holds the address as its pushkey: it goes with the address.
    await hs.ok(
        "POST",
        "pushers/set",
        email_pusher(address),
        user=user,
    )
    assert await _tables_holding(fresh_dsn, address), "the address is kept somewhere"
    assert await _tables_holding(fresh_dsn, second)
    # The log itself never holds an address.
    assert "events" not in await _tables_holding(fresh_dsn, address)

    for gone in (address, second):
        await hs.ok("POST", "account/3pid/delete", {"medium": "email", "address": gone}, user=user)
    assert await _tables_holding(fresh_dsn, address) == []
    assert await _tables_holding(fresh_dsn, second) == []

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"database": {"dsn": fresh_dsn}, "data_dir": str(data_dir)}))
    for command in ("verify", "replay"):
        outcome = await run_homeserver("audit", command, "--config", str(config), merged=True)
        assert outcome.code == 0, outcome.stdout
        assert outcome.stdout.startswith("ok: "), outcome.stdout


async def _tables_holding(dsn: str, text: str) -> list[str]:
    """The tables whose rows hold `text` anywhere (any case)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            row["tablename"]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        found = []
        for table in tables:
            hit = await conn.fetchval(
                f'SELECT 1 FROM "{table}" t WHERE strpos(lower(t::text), lower($1)) > 0 LIMIT 1',
                text,
            )
            if hit:
                found.append(table)
        return found
    finally:
        await conn.close()


async def test_binding_facts_match_their_schema(
    start_app: AppFactory, mail_server: MailServer, run_dsn: str
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    await hs.ok("POST", "account/3pid/delete", {"medium": "email", "address": address}, user=user)
    schema = json.loads(SCHEMA_TEXT)
    conn = await asyncpg.connect(run_dsn)
    try:
        rows = await conn.fetch(
            "SELECT json FROM events WHERE type = 'com.linkchat.account.threepid' AND room_id = $1",
            user.user_id,
        )
    finally:
        await conn.close()
    contents = [json.loads(row["json"])["content"] for row in rows]
    assert len(contents) == 2
    for content in contents:
        jsonschema.validate(content, schema)


async def test_addresses_an_admin_set_before_email_landed_move_into_the_log(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _email_app(start_app, mail_server, dsn=fresh_dsn)
    user = await hs.register()
    address = _address()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(
            "INSERT INTO admin_threepids_before_email"
            " (medium, address, user_id, added_at, validated_at) VALUES ('email', $1, $2, 1, 1)",
            address,
            user.user_id,
        )
    finally:
        await conn.close()
    # The next start moves it: the address logs in, and the old table is empty.
    again = await _email_app(start_app, mail_server, dsn=fresh_dsn)
    assert (await _login_by_email(again, address, user.password)).status == 200
    assert await _tables_holding(fresh_dsn, address) == ["threepid_addresses"]


async def test_deactivating_an_account_erases_its_addresses(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _email_app(start_app, mail_server, dsn=fresh_dsn)
    address = _address()
    user = await _register_with_email(hs, mail_server, address)
    await hs.ok("POST", "account/deactivate", {"auth": _password_auth(user)}, user=user)
    assert await _tables_holding(fresh_dsn, address) == []
    # The address is free again.
    await _register_with_email(hs, mail_server, address)


async def test_the_link_leads_on_to_next_link(
    start_app: AppFactory, mail_server: MailServer
) -> None:
    hs = await _email_app(start_app, mail_server)
    address = _address()
    reply = await _request_token(
        hs, "register", address, _secret(), next_link="https://app.example.com/welcome"
    )
    assert reply.status == 200, reply
    status, _ = await follow(hs, link_in(await mail_server.inbox.wait_for(address), "/validate"))
    assert status == 302
    bad = await _request_token(hs, "register", _address(), _secret(), next_link="javascript:x")
    assert bad.errcode == "M_INVALID_PARAM"


async def test_templates_are_overridden_from_the_template_dir(
    start_app: AppFactory, mail_server: MailServer, tmp_path: Path
) -> None:
    (tmp_path / "validation.subject.txt").write_text("Your {{ app_name }} code: {{ code }}\n")
    hs = await _email_app(
        start_app, mail_server, email={"template_dir": tmp_path, "app_name": "Chatty"}
    )
    address = _address()
    await _request_token(hs, "register", address, _secret())
    message = await mail_server.inbox.wait_for(address)
    assert str(message["Subject"]) == f"Your Chatty code: {code_in(message)}"
    # The files not overridden are the built-in ones.
    assert "Chatty" in html_of(message)


def test_start_up_says_once_that_emails_go_to_the_log(fresh_dsn: str, tmp_path: Path) -> None:
    # Two workers under a supervisor: still one line, not one per process.
    process = ServerProcess(tmp_path, fresh_dsn, workers=2)
    try:
        process.wait_ready(timeout_s=60)
    finally:
        process.stop()
    said = [line for line in process.log_text().splitlines() if "email.smtp_host" in line]
    assert len(said) == 1, said
    assert "emails are written to this log" in said[0]
