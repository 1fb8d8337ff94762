"""Joining, inviting, leaving, forgetting, kicking and banning, over HTTP."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.matrix import MatrixClient, Reply, User


async def _joined_rooms(hs: MatrixClient, user: User) -> list[str]:
    body = await hs.ok("GET", "joined_rooms", user=user)
    return list(body["joined_rooms"])


async def _membership(hs: MatrixClient, viewer: User, room: str, user_id: str) -> str:
    content = await hs.ok("GET", f"rooms/{room}/state/m.room.member/{user_id}", user=viewer)
    return str(content["membership"])


async def _act(hs: MatrixClient, user: User, room: str, action: str, target: User) -> Reply:
    return await hs.request(
        "POST", f"rooms/{room}/{action}", {"user_id": target.user_id}, user=user
    )


async def _public_room(hs: MatrixClient) -> tuple[User, str]:
    admin = await hs.register()
    return admin, await hs.create_room(admin, preset="public_chat")


# Joining


async def test_user_can_join_a_public_room_by_id(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    body = await hs.ok("POST", f"join/{room}", {}, user=bob)
    assert body["room_id"] == room
    assert room in await _joined_rooms(hs, bob)
    assert await _membership(hs, alice, room, bob.user_id) == "join"


async def test_user_can_join_a_public_room_by_alias(hs: MatrixClient) -> None:
    alice = await hs.register()
    name = "join_" + secrets.token_hex(5)
    room = await hs.create_room(alice, preset="public_chat", room_alias_name=name)
    bob = await hs.register()
    body = await hs.ok("POST", f"join/{quote(f'#{name}:localhost')}", {}, user=bob)
    assert body["room_id"] == room
    assert room in await _joined_rooms(hs, bob)


async def test_user_can_join_through_the_room_join_endpoint(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob = await hs.register()
    body = await hs.ok("POST", f"rooms/{room}/join", {}, user=bob)
    assert body["room_id"] == room
    assert room in await _joined_rooms(hs, bob)


async def test_join_without_a_body_works(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob = await hs.register()
    body = await hs.ok("POST", f"rooms/{room}/join", user=bob)
    assert body["room_id"] == room


async def test_join_reason_is_recorded(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.ok("POST", f"rooms/{room}/join", {"reason": "hello all"}, user=bob)
    member = await hs.ok("GET", f"rooms/{room}/state/m.room.member/{bob.user_id}", user=alice)
    assert member["reason"] == "hello all"


async def test_user_cannot_join_an_invite_only_room_uninvited(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    bob = await hs.register()
    reply = await hs.request("POST", f"join/{room}", {}, user=bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert await _joined_rooms(hs, bob) == []


async def test_joining_an_unknown_room_is_not_found(hs: MatrixClient) -> None:
    bob = await hs.register()
    reply = await hs.request("POST", "join/!doesnotexist:localhost", {}, user=bob)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_joining_an_unknown_alias_is_not_found(hs: MatrixClient) -> None:
    bob = await hs.register()
    alias = quote("#nowhere_" + secrets.token_hex(4) + ":localhost")
    reply = await hs.request("POST", f"join/{alias}", {}, user=bob)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


# Inviting


async def test_invited_user_can_join_an_invite_only_room(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    bob = await hs.register()
    await hs.ok("POST", f"rooms/{room}/invite", {"user_id": bob.user_id}, user=alice)
    assert await _membership(hs, alice, room, bob.user_id) == "invite"
    await hs.join(bob, room)
    assert room in await _joined_rooms(hs, bob)


async def test_invited_user_can_decline_by_leaving(hs: MatrixClient) -> None:
    alice = await hs.register()
    bob = await hs.register()
    room = await hs.create_room(alice, invite=[bob.user_id])
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    assert await _membership(hs, alice, room, bob.user_id) == "leave"
    reply = await hs.request("POST", f"join/{room}", {}, user=bob)
    assert reply.status == 403


async def test_non_member_cannot_invite(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    mallory, bob = await hs.register(), await hs.register()
    reply = await _act(hs, mallory, room, "invite", bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    members = await hs.ok("GET", f"rooms/{room}/members", user=alice)
    assert bob.user_id not in {event["state_key"] for event in members["chunk"]}


async def test_inviting_an_unknown_user_is_not_found(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    reply = await hs.request(
        "POST",
        f"rooms/{room}/invite",
        {"user_id": "@ghost_" + secrets.token_hex(4) + ":localhost"},
        user=alice,
    )
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


async def test_member_below_the_invite_level_cannot_invite(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)  # public_chat: inviting needs 50
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    reply = await _act(hs, bob, room, "invite", carol)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


# Leaving and forgetting


async def test_user_who_leaves_is_no_longer_in_the_room(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    assert room not in await _joined_rooms(hs, bob)
    assert await _membership(hs, alice, room, bob.user_id) == "leave"
    reply = await hs.request(
        "PUT", f"rooms/{room}/send/m.room.message/t1", {"body": "still here?"}, user=bob
    )
    assert reply.status == 403


async def test_user_must_leave_before_forgetting(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    reply = await hs.request("POST", f"rooms/{room}/forget", {}, user=bob)
    assert reply.status == 400
    assert reply.errcode == "M_UNKNOWN"
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)


async def test_user_who_forgot_a_room_can_no_longer_read_its_history(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    said = await hs.send(alice, room, {"body": "before bob left"})
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    assert (await hs.request("GET", f"rooms/{room}/event/{said}", user=bob)).status == 200
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    event = await hs.request("GET", f"rooms/{room}/event/{said}", user=bob)
    assert event.status == 404
    assert event.errcode == "M_NOT_FOUND"
    members = await hs.request("GET", f"rooms/{room}/members", user=bob)
    assert members.status == 403


async def test_user_who_forgot_a_room_can_join_it_again(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("POST", f"rooms/{room}/forget", {}, user=bob)
    await hs.join(bob, room)
    said = await hs.send(alice, room, {"body": "welcome back"})
    event = await hs.ok("GET", f"rooms/{room}/event/{said}", user=bob)
    assert event["content"] == {"body": "welcome back"}


async def test_forgetting_a_room_never_joined_is_refused(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob = await hs.register()
    reply = await hs.request("POST", f"rooms/{room}/forget", {}, user=bob)
    assert reply.status == 404
    assert reply.errcode == "M_NOT_FOUND"


# Kicking


async def test_kicked_user_is_out_and_can_rejoin_a_public_room(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    kick = await hs.request(
        "POST", f"rooms/{room}/kick", {"user_id": bob.user_id, "reason": "spam"}, user=alice
    )
    assert kick.status == 200
    assert room not in await _joined_rooms(hs, bob)
    member = await hs.ok(
        "GET", f"rooms/{room}/state/m.room.member/{bob.user_id}?format=event", user=alice
    )
    assert member["content"]["membership"] == "leave"
    assert member["content"]["reason"] == "spam"
    assert member["sender"] == alice.user_id
    await hs.join(bob, room)
    assert room in await _joined_rooms(hs, bob)


async def test_member_without_kick_power_cannot_kick(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.join(carol, room)
    reply = await _act(hs, bob, room, "kick", carol)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert room in await _joined_rooms(hs, carol)


async def test_user_cannot_kick_someone_of_equal_level(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.join(carol, room)
    await hs.set_level(alice, room, bob, 50)
    await hs.set_level(alice, room, carol, 50)
    reply = await _act(hs, bob, room, "kick", carol)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert room in await _joined_rooms(hs, carol)


async def test_user_cannot_kick_someone_of_higher_level(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.set_level(alice, room, bob, 50)
    reply = await _act(hs, bob, room, "kick", alice)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert room in await _joined_rooms(hs, alice)


async def test_moderator_can_kick_a_lower_member(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.join(carol, room)
    await hs.set_level(alice, room, bob, 50)
    assert (await _act(hs, bob, room, "kick", carol)).status == 200
    assert room not in await _joined_rooms(hs, carol)


async def test_kicking_someone_not_in_the_room_is_refused(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    reply = await _act(hs, alice, room, "kick", bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


# Banning


async def test_banned_user_cannot_rejoin(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    assert (await _act(hs, alice, room, "ban", bob)).status == 200
    assert room not in await _joined_rooms(hs, bob)
    assert await _membership(hs, alice, room, bob.user_id) == "ban"
    reply = await hs.request("POST", f"join/{room}", {}, user=bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


async def test_banned_user_cannot_be_invited(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await _act(hs, alice, room, "ban", bob)
    reply = await _act(hs, alice, room, "invite", bob)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert await _membership(hs, alice, room, bob.user_id) == "ban"


async def test_user_never_in_the_room_can_be_banned_in_advance(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    assert (await _act(hs, alice, room, "ban", bob)).status == 200
    assert (await hs.request("POST", f"join/{room}", {}, user=bob)).status == 403


async def test_unbanned_user_can_join_again(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await _act(hs, alice, room, "ban", bob)
    assert (await _act(hs, alice, room, "unban", bob)).status == 200
    assert await _membership(hs, alice, room, bob.user_id) == "leave"
    await hs.join(bob, room)
    assert room in await _joined_rooms(hs, bob)


async def test_banned_user_cannot_unban_themselves_by_leaving(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await _act(hs, alice, room, "ban", bob)
    reply = await hs.request("POST", f"rooms/{room}/leave", {}, user=bob)
    assert reply.status == 403
    assert await _membership(hs, alice, room, bob.user_id) == "ban"


async def test_member_without_ban_power_cannot_ban(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.join(carol, room)
    reply = await _act(hs, bob, room, "ban", carol)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"
    assert room in await _joined_rooms(hs, carol)


async def test_user_cannot_ban_someone_of_higher_level(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.set_level(alice, room, bob, 50)
    reply = await _act(hs, bob, room, "ban", alice)
    assert reply.status == 403
    assert room in await _joined_rooms(hs, alice)


async def test_unbanning_someone_not_banned_is_refused(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    reply = await _act(hs, alice, room, "unban", bob)
    assert reply.status == 400
    assert reply.errcode == "M_BAD_STATE"
    assert room in await _joined_rooms(hs, bob)


# Listing


async def test_joined_rooms_lists_exactly_the_rooms_joined(hs: MatrixClient) -> None:
    alice = await hs.register()
    first = await hs.create_room(alice, preset="public_chat")
    second = await hs.create_room(alice, preset="public_chat")
    bob = await hs.register()
    assert await _joined_rooms(hs, bob) == []
    await hs.join(bob, first)
    await hs.join(bob, second)
    assert sorted(await _joined_rooms(hs, bob)) == sorted([first, second])
    await hs.ok("POST", f"rooms/{first}/leave", {}, user=bob)
    assert await _joined_rooms(hs, bob) == [second]


async def test_joined_members_shows_display_names(hs: MatrixClient) -> None:
    alice = await hs.register("alice_" + secrets.token_hex(4))
    room = await hs.create_room(alice, preset="public_chat")
    bob = await hs.register("bob_" + secrets.token_hex(4))
    await hs.join(bob, room)
    carol = await hs.register()
    await _act(hs, alice, room, "invite", carol)
    body = await hs.ok("GET", f"rooms/{room}/joined_members", user=bob)
    joined = body["joined"]
    assert set(joined) == {alice.user_id, bob.user_id}
    assert joined[alice.user_id]["display_name"] == alice.user_id[1:].split(":")[0]
    assert joined[bob.user_id]["display_name"] == bob.user_id[1:].split(":")[0]


async def test_non_member_cannot_list_joined_members(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    mallory = await hs.register()
    reply = await hs.request("GET", f"rooms/{room}/joined_members", user=mallory)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


async def test_members_can_be_filtered_by_membership(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob, carol, dave = await hs.register(), await hs.register(), await hs.register()
    await hs.join(bob, room)
    await _act(hs, alice, room, "invite", carol)
    await hs.join(dave, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=dave)

    async def members(query: str) -> dict[str, str]:
        body = await hs.ok("GET", f"rooms/{room}/members{query}", user=alice)
        return {event["state_key"]: event["content"]["membership"] for event in body["chunk"]}

    everyone = {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
        dave.user_id: "leave",
    }
    assert await members("") == everyone
    assert await members("?membership=join") == {alice.user_id: "join", bob.user_id: "join"}
    assert await members("?membership=invite") == {carol.user_id: "invite"}
    assert await members("?not_membership=leave") == {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
    }


async def test_user_who_left_sees_members_as_of_leaving(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.join(carol, room)
    body = await hs.ok("GET", f"rooms/{room}/members", user=bob)
    seen = {event["state_key"]: event["content"]["membership"] for event in body["chunk"]}
    assert seen == {alice.user_id: "join", bob.user_id: "leave"}


async def test_user_who_left_reads_room_state_as_it_was_when_they_left(
    hs: MatrixClient,
) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/leave", {}, user=bob)
    await hs.ok("PUT", f"rooms/{room}/state/m.room.topic/", {"topic": "after"}, user=alice)
    whole = await hs.ok("GET", f"rooms/{room}/state", user=bob)
    assert not any(e["type"] == "m.room.topic" for e in whole)
    mine = next(e for e in whole if e["type"] == "m.room.member" and e["state_key"] == bob.user_id)
    assert mine["content"]["membership"] == "leave"
    missing = await hs.request("GET", f"rooms/{room}/state/m.room.topic/", user=bob)
    assert missing.status == 404
    assert missing.errcode == "M_NOT_FOUND"


async def test_stranger_cannot_list_members(hs: MatrixClient) -> None:
    _, room = await _public_room(hs)
    mallory = await hs.register()
    reply = await hs.request("GET", f"rooms/{room}/members", user=mallory)
    assert reply.status == 403
    assert reply.errcode == "M_FORBIDDEN"


# Idempotence and the content of a join


async def _member_event(hs: MatrixClient, viewer: User, room: str, user_id: str) -> Any:
    path = f"rooms/{room}/state/m.room.member/{user_id}?format=event"
    return await hs.ok("GET", path, user=viewer)


async def test_joining_a_room_one_is_in_appends_no_second_join(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    await hs.join(bob, room)
    joined = await _member_event(hs, alice, room, bob.user_id)
    since = (await hs.sync(alice))["next_batch"]
    await hs.join(bob, room)
    await hs.ok("POST", f"rooms/{room}/join", {}, user=bob)
    assert (await _member_event(hs, alice, room, bob.user_id))["event_id"] == joined["event_id"]
    later = await hs.sync(alice, since=since)
    timeline = later.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
    assert [e for e in timeline.get("events", []) if e["type"] == "m.room.member"] == []


async def test_join_keeps_the_reason_and_custom_keys_of_its_body(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob, carol = await hs.register(), await hs.register()
    body = {"reason": "hi", "com.example.badge": {"level": 3}}
    await hs.ok("POST", f"join/{room}", body, user=bob)
    await hs.ok("POST", f"rooms/{room}/join", body, user=carol)
    for user in (bob, carol):
        content = (await _member_event(hs, alice, room, user.user_id))["content"]
        assert content["membership"] == "join"
        assert content["reason"] == "hi"
        assert content["com.example.badge"] == {"level": 3}
        assert content["displayname"] == user.user_id[1:].split(":")[0]


async def test_join_body_cannot_change_the_membership_or_vouch_for_itself(
    hs: MatrixClient,
) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, preset="private_chat")
    await hs.ok(
        "PUT",
        f"rooms/{room}/state/m.room.join_rules/",
        {"join_rule": "restricted", "allow": []},
        user=alice,
    )
    bob = await hs.register()
    body = {"membership": "join", "join_authorised_via_users_server": alice.user_id}
    reply = await hs.request("POST", f"rooms/{room}/join", body, user=bob)
    assert reply.status == 403
    assert await _joined_rooms(hs, bob) == []
    carol = await hs.register()
    _, public = await _public_room(hs)
    await hs.ok("POST", f"join/{public}", {"membership": "leave"}, user=carol)
    assert await _joined_rooms(hs, carol) == [public]


async def test_joined_members_carry_display_names_and_avatars(hs: MatrixClient) -> None:
    alice, room = await _public_room(hs)
    bob = await hs.register()
    avatar = "mxc://localhost/bobface"
    await hs.ok("PUT", f"profile/{bob.user_id}/displayname", {"displayname": "Bob"}, user=bob)
    await hs.ok("PUT", f"profile/{bob.user_id}/avatar_url", {"avatar_url": avatar}, user=bob)
    await hs.join(bob, room)
    joined = (await hs.ok("GET", f"rooms/{room}/joined_members", user=alice))["joined"]
    assert joined[bob.user_id] == {"display_name": "Bob", "avatar_url": avatar}
    await hs.ok("PUT", f"profile/{bob.user_id}/displayname", {"displayname": "Robert"}, user=bob)
    joined = (await hs.ok("GET", f"rooms/{room}/joined_members", user=alice))["joined"]
    assert joined[bob.user_id] == {"display_name": "Robert", "avatar_url": avatar}
