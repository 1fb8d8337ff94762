"""m.ignored_user_list: what ignored users send never reaches the one ignoring them."""

from __future__ import annotations

from typing import Any

from tests.matrix import MatrixClient, User


async def _ignore(hs: MatrixClient, user: User, *others: User) -> None:
    await hs.ok(
        "PUT",
        f"user/{user.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {other.user_id: {} for other in others}},
        user=user,
    )


def _said(body: dict[str, Any], room: str) -> list[str]:
    section = body["rooms"]["join"].get(room)
    if section is None:
        return []
    return [
        e["content"]["body"] for e in section["timeline"]["events"] if e["type"] == "m.room.message"
    ]


def _readers(body: dict[str, Any], room: str) -> set[str]:
    section = body["rooms"]["join"].get(room, {"ephemeral": {"events": []}})
    return {
        user
        for event in section["ephemeral"]["events"]
        if event["type"] == "m.receipt"
        for by_type in event["content"].values()
        for users in by_type.values()
        for user in users
    }


async def _say(hs: MatrixClient, user: User, room: str, text: str) -> str:
    return await hs.send(user, room, {"msgtype": "m.text", "body": text})


async def _room_of_three(hs: MatrixClient) -> tuple[User, User, User, str]:
    alice, bob, troll = await hs.register(), await hs.register(), await hs.register()
    room = await hs.create_room(alice, preset="public_chat")
    await hs.join(bob, room)
    await hs.join(troll, room)
    return alice, bob, troll, room


async def test_messages_of_an_ignored_user_vanish_from_sync(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    await _say(hs, troll, room, "before")
    await _ignore(hs, bob, troll)
    since = (await hs.sync(bob))["next_batch"]
    await _say(hs, troll, room, "spam")
    await _say(hs, alice, room, "hello")
    body = await hs.sync(bob, since)
    assert _said(body, room) == ["hello"]
    # The initial sync (built from the database) leaves them out too; state stays.
    initial = await hs.sync(bob)
    assert _said(initial, room) == ["hello"]
    section = initial["rooms"]["join"][room]
    members = {
        e["state_key"]
        for e in section["state"]["events"] + section["timeline"]["events"]
        if e["type"] == "m.room.member"
    }
    assert troll.user_id in members
    # The others still see them.
    assert _said(await hs.sync(alice, since), room) == ["spam", "hello"]


async def test_ignored_users_leave_history_and_context(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    await _say(hs, alice, room, "one")
    spam = await _say(hs, troll, room, "spam")
    middle = await _say(hs, alice, room, "two")
    await _ignore(hs, bob, troll)
    history = await hs.ok("GET", f"rooms/{room}/messages?dir=b&limit=50", user=bob)
    said = [e["content"].get("body") for e in history["chunk"] if e["type"] == "m.room.message"]
    assert said == ["two", "one"]
    assert troll.user_id in {e["state_key"] for e in history["chunk"] if "state_key" in e}
    context = await hs.ok("GET", f"rooms/{room}/context/{middle}?limit=10", user=bob)
    around = [e["event_id"] for e in context["events_before"] + context["events_after"]]
    assert spam not in around
    reply = await hs.request("GET", f"rooms/{room}/context/{spam}", user=bob)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


async def test_an_ignored_users_event_is_not_found_by_id(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    spam = await _say(hs, troll, room, "spam")
    hello = await _say(hs, alice, room, "hello")
    await _ignore(hs, bob, troll)
    reply = await hs.request("GET", f"rooms/{room}/event/{spam}", user=bob)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert (await hs.ok("GET", f"rooms/{room}/event/{hello}", user=bob))["event_id"] == hello
    # Their state is still served, and everyone else still sees the message.
    join = await hs.ok("GET", f"rooms/{room}/state/m.room.member/{troll.user_id}", user=bob)
    assert join["membership"] == "join"
    assert (await hs.ok("GET", f"rooms/{room}/event/{spam}", user=alice))["event_id"] == spam


def _typers(body: dict[str, Any], room: str) -> list[list[str]]:
    section = body["rooms"]["join"].get(room, {"ephemeral": {"events": []}})
    return [
        event["content"]["user_ids"]
        for event in section["ephemeral"]["events"]
        if event["type"] == "m.typing"
    ]


async def test_an_ignored_user_is_never_shown_typing(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    await _ignore(hs, bob, troll)
    since = (await hs.sync(bob))["next_batch"]
    for typist in (troll, alice):
        await hs.ok(
            "PUT",
            f"rooms/{room}/typing/{typist.user_id}",
            {"typing": True, "timeout": 30000},
            user=typist,
        )
    assert _typers(await hs.sync(bob, since), room) == [[alice.user_id]]
    assert _typers(await hs.sync(bob), room) == [[alice.user_id]]
    assert sorted(_typers(await hs.sync(alice), room)[0]) == sorted([alice.user_id, troll.user_id])


async def test_invites_from_an_ignored_user_are_not_shown(hs: MatrixClient) -> None:
    bob, troll, friend = await hs.register(), await hs.register(), await hs.register()
    await _ignore(hs, bob, troll)
    since = (await hs.sync(bob))["next_batch"]
    unwanted = await hs.create_room(troll, invite=[bob.user_id])
    wanted = await hs.create_room(friend, invite=[bob.user_id])
    invites = (await hs.sync(bob, since))["rooms"]["invite"]
    assert wanted in invites
    assert unwanted not in invites
    assert unwanted not in (await hs.sync(bob))["rooms"]["invite"]


async def test_receipts_of_an_ignored_user_are_left_out(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    await _ignore(hs, bob, troll)
    since = (await hs.sync(bob))["next_batch"]
    event_id = await _say(hs, alice, room, "read me")
    for reader in (troll, alice):
        await hs.ok("POST", f"rooms/{room}/receipt/m.read/{event_id}", {}, user=reader)
    assert _readers(await hs.sync(bob, since), room) == {alice.user_id}
    assert troll.user_id not in _readers(await hs.sync(bob), room)
    assert troll.user_id in _readers(await hs.sync(alice), room)


async def test_unignoring_restores_what_is_sent_afterwards(hs: MatrixClient) -> None:
    _alice, bob, troll, room = await _room_of_three(hs)
    await _ignore(hs, bob, troll)
    await _say(hs, troll, room, "while ignored")
    since = (await hs.sync(bob))["next_batch"]
    await _ignore(hs, bob)
    # Takes effect in the very next sync.
    await _say(hs, troll, room, "forgiven")
    assert _said(await hs.sync(bob, since), room) == ["forgiven"]
    invite_room = await hs.create_room(troll, invite=[bob.user_id])
    assert invite_room in (await hs.sync(bob, since))["rooms"]["invite"]


async def test_ignoring_takes_effect_in_the_next_sync(hs: MatrixClient) -> None:
    alice, bob, troll, room = await _room_of_three(hs)
    since = (await hs.sync(bob))["next_batch"]
    await _say(hs, troll, room, "seen")
    body = await hs.sync(bob, since)
    assert _said(body, room) == ["seen"]
    await _ignore(hs, bob, troll)
    await _say(hs, troll, room, "unseen")
    await _say(hs, alice, room, "still here")
    assert _said(await hs.sync(bob, body["next_batch"]), room) == ["still here"]


async def test_a_malformed_ignore_list_ignores_nobody(hs: MatrixClient) -> None:
    _alice, bob, troll, room = await _room_of_three(hs)
    await hs.ok(
        "PUT",
        f"user/{bob.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": [troll.user_id]},
        user=bob,
    )
    since = (await hs.sync(bob))["next_batch"]
    await _say(hs, troll, room, "heard")
    assert _said(await hs.sync(bob, since), room) == ["heard"]


async def test_a_user_cannot_ignore_themselves(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice)
    await _ignore(hs, alice, alice)
    since = (await hs.sync(alice))["next_batch"]
    await _say(hs, alice, room, "me")
    assert _said(await hs.sync(alice, since), room) == ["me"]
