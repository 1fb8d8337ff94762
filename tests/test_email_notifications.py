"""Email notifications of missed messages (issue 16, item 4): `kind: email` pushers, sent
by a durable follower after email.notif_delay, through a real SMTP server."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import AppFactory
from tests.mail_server import (
    MailServer,
    email_pusher,
    follow,
    html_of,
    link_in,
    mail_server,
    text_of,
)
from tests.matrix import MatrixClient, User
from tests.test_email import _address, _register_with_email

__all__ = ["mail_server"]  # the fixture

# Long enough for a test to read a room before it: the tests that send nothing wait it out.
QUIET_SECONDS = 2.0


async def _app(
    start_app: AppFactory, mail: MailServer, dsn: str, delay: float = 0.3
) -> MatrixClient:
    return await start_app(
        dsn=dsn,
        email=mail.settings(notif_delay=delay),
        registration={"require_email": "optional"},
    )


async def _subscribed(hs: MatrixClient, mail: MailServer) -> tuple[User, str]:
    """A user with an email address and an email pusher for it."""
    address = _address()
    user = await _register_with_email(hs, mail, address)
    await hs.ok(
        "POST",
        "pushers/set",
        email_pusher(address),
        user=user,
    )
    return user, address


async def _room_with(hs: MatrixClient, alice: User, bob: User, **body: Any) -> str:
    room = await hs.create_room(alice, preset="public_chat", **body)
    await hs.join(bob, room)
    return room


async def _text(hs: MatrixClient, user: User, room: str, body: str) -> str:
    return await hs.send(user, room, {"msgtype": "m.text", "body": body})


async def _set_name(hs: MatrixClient, user: User, name: str) -> None:
    await hs.ok("PUT", f"profile/{user.user_id}/displayname", {"displayname": name}, user=user)


async def test_missed_messages_are_emailed_once(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    await _set_name(hs, alice, "Alice Liddell")
    room = await _room_with(hs, alice, bob, name="Tea party")
    before = len(mail_server.inbox.to(address))
    await _text(hs, alice, room, "Are you coming to the tea party?")
    await _text(hs, alice, room, "It starts at five")
    message = await mail_server.inbox.wait_for(address, before + 1)
    text, html = text_of(message), html_of(message)
    assert "Tea party" in str(message["Subject"])
    for part in (text, html):
        assert "Tea party" in part
        assert "Alice Liddell" in part
        assert "Are you coming to the tea party?" in part
        assert "It starts at five" in part
    assert "/_linkchat/client/email/unsubscribe?" in text
    assert message["List-Unsubscribe"]
    # Once: nothing more arrives for the same messages.
    await asyncio.sleep(QUIET_SECONDS)
    assert len(mail_server.inbox.to(address)) == before + 1


async def test_a_muted_room_is_not_emailed(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    muted = await _room_with(hs, alice, bob, name="Muted room")
    loud = await _room_with(hs, alice, bob, name="Loud room")
    await hs.ok("PUT", f"pushrules/global/room/{muted}", {"actions": []}, user=bob)
    before = len(mail_server.inbox.to(address))
    await _text(hs, alice, muted, "psst, in the muted room")
    await asyncio.sleep(QUIET_SECONDS)
    assert len(mail_server.inbox.to(address)) == before
    await _text(hs, alice, loud, "hello from the loud room")
    message = await mail_server.inbox.wait_for(address, before + 1)
    assert "hello from the loud room" in text_of(message)
    assert "muted" not in text_of(message).lower()


async def test_a_room_read_in_time_is_not_emailed(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn, delay=QUIET_SECONDS)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    read = await _room_with(hs, alice, bob, name="Read room")
    unread = await _room_with(hs, alice, bob, name="Unread room")
    before = len(mail_server.inbox.to(address))
    event = await _text(hs, alice, read, "seen at once")
    await hs.ok("POST", f"rooms/{read}/receipt/m.read/{event}", {}, user=bob)
    await _text(hs, alice, unread, "left unread")
    message = await mail_server.inbox.wait_for(address, before + 1)
    assert "left unread" in text_of(message)
    assert "seen at once" not in text_of(message)
    assert "Read room" not in text_of(message)


async def test_encrypted_rooms_are_emailed_without_their_content(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    room = await _room_with(
        hs,
        alice,
        bob,
        name="Secret room",
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    before = len(mail_server.inbox.to(address))
    await hs.send(
        alice,
        room,
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "QUJDREVG", "session_id": "s"},
        event_type="m.room.encrypted",
    )
    # Even a plain message in an encrypted room is not shown.
    await _text(hs, alice, room, "the launch code is 0000")
    message = await mail_server.inbox.wait_for(address, before + 1)
    for part in (text_of(message), html_of(message)):
        assert "encrypted message" in part
        assert "launch code" not in part
        assert "QUJDREVG" not in part


async def test_the_unsubscribe_link_works_without_logging_in(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    room = await _room_with(hs, alice, bob)
    before = len(mail_server.inbox.to(address))
    await _text(hs, alice, room, "first")
    message = await mail_server.inbox.wait_for(address, before + 1)
    link = link_in(message, "/unsubscribe")
    forged = link.replace("token=", "token=0")
    status, page = await follow(hs, forged)
    assert status == 400
    assert len((await hs.ok("GET", "pushers", user=bob))["pushers"]) == 1
    status, page = await follow(hs, link)  # no access token
    assert status == 200, page
    assert "unsubscribed" in page
    assert (await hs.ok("GET", "pushers", user=bob))["pushers"] == []
    await _text(hs, alice, room, "second")
    await asyncio.sleep(QUIET_SECONDS)
    assert len(mail_server.inbox.to(address)) == before + 1


async def test_an_email_is_not_sent_again_after_a_restart(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    bob, address = await _subscribed(hs, mail_server)
    alice = await hs.register()
    room = await _room_with(hs, alice, bob)
    before = len(mail_server.inbox.to(address))
    await _text(hs, alice, room, "only once")
    await mail_server.inbox.wait_for(address, before + 1)
    await hs.http.close()
    restarted = await _app(start_app, mail_server, fresh_dsn)
    # The new process takes the follower's lease (seconds) and looks again.
    await asyncio.sleep(QUIET_SECONDS + 3)
    assert len(mail_server.inbox.to(address)) == before + 1
    # It does send what is new.
    await _text(restarted, alice, room, "something new")
    message = await mail_server.inbox.wait_for(address, before + 2)
    assert "something new" in text_of(message)
    assert "only once" not in text_of(message)


async def test_an_email_pusher_needs_an_address_of_ones_own(
    start_app: AppFactory, mail_server: MailServer, fresh_dsn: str
) -> None:
    hs = await _app(start_app, mail_server, fresh_dsn)
    user = await hs.register()
    reply = await hs.request(
        "POST",
        "pushers/set",
        email_pusher(_address()),
        user=user,
    )
    assert reply.status == 400
    assert reply.errcode == "M_THREEPID_NOT_FOUND"
