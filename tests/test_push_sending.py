"""Pushers and sending: what reaches a Push Gateway, in order, despite it being down."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.devices import COMMAND, paired_device, send_command
from tests.matrix import MatrixClient, User
from tests.push_gateway import RecordingGateway


@pytest.fixture
async def gateway() -> AsyncIterator[RecordingGateway]:
    found = RecordingGateway()
    await found.start()
    yield found
    await found.stop()


def pusher_body(url: str, pushkey: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "com.example.app.android",
        "pushkey": pushkey or "key-" + secrets.token_hex(6),
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url, **data},
    }


async def add_pusher(hs: MatrixClient, user: User, url: str, **data: Any) -> str:
    body = pusher_body(url, **data)
    await hs.ok("POST", "pushers/set", body, user=user)
    return str(body["pushkey"])


async def test_a_message_reaches_the_members_gateway_with_every_field(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    await hs.ok("PUT", f"profile/{alice.user_id}/displayname", {"displayname": "Alice"}, user=alice)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.name", {"name": "Tea"}, user=alice)
    pushkey = await add_pusher(hs, bob, gateway.url, custom="kept")
    event_id = await hs.send(alice, room, {"msgtype": "m.text", "body": "hello bob"})
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    (notification,) = gateway.for_pushkey(pushkey)
    assert notification["event_id"] == event_id
    assert notification["room_id"] == room
    assert notification["type"] == "m.room.message"
    assert notification["sender"] == alice.user_id
    assert notification["sender_display_name"] == "Alice"
    assert notification["room_name"] == "Tea"
    assert notification["content"] == {"msgtype": "m.text", "body": "hello bob"}
    assert notification["counts"] == {"unread": 1}
    # A room of two: .m.rule.room_one_to_one, with its sound.
    assert notification["prio"] == "high"
    (device,) = notification["devices"]
    assert device == {
        "app_id": "com.example.app.android",
        "pushkey": pushkey,
        "data": {"custom": "kept"},
        "tweaks": {"sound": "default"},
    }
    # The sender is never notified of their own message.
    assert all(b["notification"]["sender"] != bob.user_id for b in gateway.received)


async def test_event_id_only_pushers_get_no_content(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    pushkey = await add_pusher(hs, bob, gateway.url, format="event_id_only")
    event_id = await hs.send(alice, room)
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    (notification,) = gateway.for_pushkey(pushkey)
    assert set(notification) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert notification["event_id"] == event_id


async def test_a_down_gateway_gets_every_notification_in_order_once_up(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    pushkey = await add_pusher(hs, bob, gateway.url)
    gateway.down = True
    sent = [await hs.send(alice, room, {"msgtype": "m.text", "body": f"m{i}"}) for i in range(6)]
    await gateway.wait_for(lambda: gateway.refused >= 2, what="tries while down")
    gateway.down = False
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= len(sent), within=60)
    assert [n["event_id"] for n in gateway.for_pushkey(pushkey)] == sent


async def test_a_gateway_that_is_not_listening_gets_everything_in_order_once_back(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    """Down as when its process is stopped (connection refused, not a 503), while another
    member's gateway is up: that one is not held up, and nothing is lost."""
    alice, bob, room = await hs.room_of_two()
    carol = await hs.register()
    await hs.join(carol, room)
    other = RecordingGateway()
    await other.start()
    try:
        bobs = await add_pusher(hs, bob, gateway.url)
        carols = await add_pusher(hs, carol, other.url)
        port = gateway.port
        await gateway.stop()
        sent = [await hs.send(alice, room, {"msgtype": "m.text", "body": f"{i}"}) for i in range(5)]
        await other.wait_for(lambda: len(other.for_pushkey(carols)) >= len(sent))
        assert [n["event_id"] for n in other.for_pushkey(carols)] == sent

        # Bob's were recorded (and tried) while his gateway was away.
        async def listed() -> bool:
            notifications = (await hs.ok("GET", "notifications", user=bob))["notifications"]
            return len(notifications) >= len(sent)

        await hs.eventually(listed)
        assert gateway.for_pushkey(bobs) == []
        await asyncio.sleep(1.5)  # past the first retry or two
        await gateway.start(port)
        await gateway.wait_for(lambda: len(gateway.for_pushkey(bobs)) >= len(sent), within=60)
        assert [n["event_id"] for n in gateway.for_pushkey(bobs)] == sent
    finally:
        await other.stop()


async def test_a_rejected_pushkey_is_gone_from_the_pushers(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    pushkey = await add_pusher(hs, bob, gateway.url)
    gateway.rejecting.add(pushkey)
    await hs.send(alice, room)
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    for _ in range(100):
        if not (await hs.ok("GET", "pushers", user=bob))["pushers"]:
            break
        await asyncio.sleep(0.1)
    assert (await hs.ok("GET", "pushers", user=bob))["pushers"] == []


async def test_notifications_list_what_notified(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    pushkey = await add_pusher(hs, bob, gateway.url)
    first = await hs.send(alice, room, {"msgtype": "m.text", "body": "plain"})
    second = await hs.send(alice, room, {"msgtype": "m.text", "body": f"hi {bob.user_id}"})
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 2)
    body = await hs.ok("GET", "notifications", user=bob)
    listed = body["notifications"]
    assert [n["event"]["event_id"] for n in listed] == [second, first]
    assert all(n["room_id"] == room and n["read"] is False for n in listed)
    assert all(isinstance(n["ts"], int) for n in listed)
    assert "notify" in listed[0]["actions"]
    highlights = await hs.ok("GET", "notifications?only=highlight", user=bob)
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [second]
    page = await hs.ok("GET", "notifications?limit=1", user=bob)
    assert [n["event"]["event_id"] for n in page["notifications"]] == [second]
    rest = await hs.ok("GET", f"notifications?limit=1&from={page['next_token']}", user=bob)
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [first]
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{second}", {}, user=bob)
    after = await hs.ok("GET", "notifications", user=bob)
    assert [n["read"] for n in after["notifications"]] == [True, True]


async def test_a_device_command_wakes_the_device_with_a_data_only_high_priority_push(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    paired = await paired_device(hs)
    pushkey = await add_pusher(hs, paired.device, gateway.url)
    owners = await add_pusher(hs, paired.owner, gateway.url)
    sent = await send_command(hs, paired.owner, paired.room_id)
    assert sent.status == 200, sent.body
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    (notification,) = gateway.for_pushkey(pushkey)
    assert notification["event_id"] == sent.body["event_id"]
    assert notification["type"] == COMMAND
    assert notification["prio"] == "high"
    (device,) = notification["devices"]
    assert device["tweaks"] == {"com.linkchat.priority": "high", "com.linkchat.data_only": True}
    # The owner is in the device room too, but a command is not a message to them.
    await hs.send(paired.device, paired.room_id, {"msgtype": "m.text", "body": "marker"})
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(owners)))
    assert [n["type"] for n in gateway.for_pushkey(owners)] == ["m.room.message"]


async def test_a_friend_request_notifies_its_recipient(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob = await hs.register(), await hs.register()
    pushkey = await add_pusher(hs, bob, gateway.url)
    await hs.ok("POST", "/_linkchat/v1/friends/requests", {"user_id": bob.user_id}, user=alice)
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    (notification,) = gateway.for_pushkey(pushkey)
    assert notification["type"] == "com.linkchat.friend"
    assert notification["sender"] == alice.user_id
    assert notification["content"]["relation"] == "incoming"
    assert "room_id" not in notification
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}


async def test_an_invite_notifies_the_invitee_who_is_not_yet_in_the_room(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob = await hs.register(), await hs.register()
    await hs.ok("PUT", f"profile/{alice.user_id}/displayname", {"displayname": "Alice"}, user=alice)
    room = await hs.create_room(alice, name="Garden")
    pushkey = await add_pusher(hs, bob, gateway.url)
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    await gateway.wait_for(lambda: bool(gateway.for_pushkey(pushkey)))
    (notification,) = gateway.for_pushkey(pushkey)
    assert notification["type"] == "m.room.member"
    assert notification["room_id"] == room
    assert notification["sender"] == alice.user_id
    assert notification["sender_display_name"] == "Alice"
    assert notification["room_name"] == "Garden"
    assert notification["membership"] == "invite"
    assert notification["user_is_target"] is True
    # .m.rule.invite_for_me: notify, with the default sound.
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}
    listed = (await hs.ok("GET", "notifications", user=bob))["notifications"]
    assert [(n["room_id"], n["event"]["type"]) for n in listed] == [(room, "m.room.member")]
    assert listed[0]["event"]["state_key"] == bob.user_id


async def test_encrypted_messages_ring_in_a_room_of_two_and_only_notify_in_a_group(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    """The server cannot read them: .m.rule.encrypted_room_one_to_one and .m.rule.encrypted."""
    alice, bob, pair = await hs.room_of_two()
    group = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, group)
    await hs.join(await hs.register(), group)
    encryption = {"algorithm": "m.megolm.v1.aes-sha2"}
    for room in (pair, group):
        await hs.ok("PUT", f"rooms/{room}/state/m.room.encryption", encryption, user=alice)
    pushkey = await add_pusher(hs, bob, gateway.url)
    ciphertext = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "sk",
        "device_id": "DEV",
        "session_id": "sess",
        "ciphertext": "AwgAEnAc",
    }
    in_pair = await hs.send(alice, pair, ciphertext, "m.room.encrypted")
    in_group = await hs.send(alice, group, ciphertext, "m.room.encrypted")
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 2)
    first, second = gateway.for_pushkey(pushkey)
    assert (first["event_id"], first["type"]) == (in_pair, "m.room.encrypted")
    assert first["content"] == ciphertext
    assert first["devices"][0]["tweaks"] == {"sound": "default"}
    assert second["event_id"] == in_group
    assert second["devices"][0]["tweaks"] == {}
    # Encrypted events go out at high priority: the app must wake to decrypt them.
    assert first["prio"] == second["prio"] == "high"
    synced = await hs.ok("GET", "sync", user=bob)
    for room in (pair, group):
        unread = synced["rooms"]["join"][room]["unread_notifications"]
        assert unread == {"notification_count": 1, "highlight_count": 0}, room


async def test_reading_on_another_device_sends_the_lower_badge_to_the_phone(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    alice, bob, room = await hs.room_of_two()
    pushkey = await add_pusher(hs, bob, gateway.url, format="event_id_only")
    first = await hs.send(alice, room, {"msgtype": "m.text", "body": "one"})
    second = await hs.send(alice, room, {"msgtype": "m.text", "body": "two"})
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 2)
    # Bob reads both on his laptop: the phone's badge goes to 0, with no event.
    await hs.ok("POST", f"rooms/{room}/receipt/m.read/{second}", {}, user=bob)
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 3)
    # Reading again changes no badge: nothing is sent for it.
    await hs.ok("POST", f"rooms/{room}/receipt/m.read.private/{second}", {}, user=bob)
    third = await hs.send(alice, room, {"msgtype": "m.text", "body": "three"})
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 4)
    # A private receipt clears the badge too.
    await hs.ok("POST", f"rooms/{room}/receipt/m.read.private/{third}", {}, user=bob)
    await gateway.wait_for(lambda: len(gateway.for_pushkey(pushkey)) >= 5)
    pushed = gateway.for_pushkey(pushkey)
    assert [(n.get("event_id"), n["counts"]["unread"]) for n in pushed] == [
        (first, 1),
        (second, 2),
        (None, 0),
        (third, 1),
        (None, 0),
    ]
    badge = pushed[2]
    assert badge["prio"] == "low"
    assert set(badge) == {"counts", "prio", "devices"}
    assert badge["devices"][0]["pushkey"] == pushkey


async def test_the_badge_counts_only_rooms_one_is_in_or_invited_to(
    hs: MatrixClient, gateway: RecordingGateway
) -> None:
    """Leaving a room, or declining an invite, takes its unread notifications off the
    badge (as Synapse: joined rooms and pending invites), and the phone is told."""
    alice, bob, group = await hs.room_of_two()
    await hs.join(await hs.register(), group)
    pushkey = await add_pusher(hs, bob, gateway.url)

    def pushed() -> list[tuple[str | None, int]]:
        return [(n.get("type"), n["counts"]["unread"]) for n in gateway.for_pushkey(pushkey)]

    for text in ("one", "two"):
        await hs.send(alice, group, {"msgtype": "m.text", "body": text})
    await gateway.wait_for(lambda: len(pushed()) >= 2)
    await hs.ok("POST", f"rooms/{group}/leave", {}, user=bob)
    await gateway.wait_for(lambda: len(pushed()) >= 3)
    invited = await hs.create_room(alice)
    await hs.ok("POST", f"rooms/{invited}/invite", {"user_id": bob.user_id}, user=alice)
    await gateway.wait_for(lambda: len(pushed()) >= 4)
    await hs.ok("POST", f"rooms/{invited}/leave", {}, user=bob)  # declined
    await gateway.wait_for(lambda: len(pushed()) >= 5)
    pair = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, pair)
    await hs.send(alice, pair, {"msgtype": "m.text", "body": "three"})
    await gateway.wait_for(lambda: len(pushed()) >= 6)
    assert pushed() == [
        ("m.room.message", 1),
        ("m.room.message", 2),
        (None, 0),  # left the group unread
        ("m.room.member", 1),  # the pending invite counts
        (None, 0),  # declined
        ("m.room.message", 1),
    ]
