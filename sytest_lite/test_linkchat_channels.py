"""LinkChat extension: named roles and broadcast channels (/_linkchat/v1, spec/channels.md)."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, fresh_username, q

CHANNEL = {"type": "com.linkchat.channel"}
TEXT = {"msgtype": "m.text", "body": "news"}


async def _set_role(
    api: Api, who: Registered, room_id: str, user_id: str, role: Any
) -> tuple[int, Any]:
    return await api.request(
        "PUT",
        f"/_linkchat/v1/rooms/{q(room_id)}/roles/{q(user_id)}",
        json={"role": role},
        token=who.access_token,
    )


async def _roles(api: Api, who: Registered, room_id: str) -> tuple[int, Any]:
    return await api.request(
        "GET", f"/_linkchat/v1/rooms/{q(room_id)}/roles", token=who.access_token
    )


async def _info(api: Api, who: Registered, room_id: str) -> tuple[int, Any]:
    return await api.request("GET", f"/_linkchat/v1/channels/{q(room_id)}", token=who.access_token)


async def _reaction(api: Api, who: Registered, room_id: str, event_id: str) -> tuple[int, Any]:
    relation = {"rel_type": "m.annotation", "event_id": event_id, "key": "+1"}
    return await api.send(who.access_token, room_id, "m.reaction", {"m.relates_to": relation})


# Roles


async def test_roles_of_a_new_room(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    assert await _roles(api, bob, room_id) == (
        200,
        {alice.user_id: "owner", bob.user_id: "member"},
    )


async def test_owner_sets_a_role_written_into_power_levels(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    status, body = await _set_role(api, alice, room_id, bob.user_id, "moderator")
    assert status == 200 and body["event_id"].startswith("$"), (status, body)
    levels = await api.state_content(bob.access_token, room_id, "m.room.power_levels")
    assert levels["users"][bob.user_id] == 50
    status, roles = await _roles(api, bob, room_id)
    assert (status, roles[bob.user_id]) == (200, "moderator")


async def test_unknown_role_is_invalid_param(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await _set_role(api, alice, room_id, alice.user_id, "emperor")
    assert_error(status, body, 400, "M_INVALID_PARAM")


async def test_member_cannot_give_roles(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token, preset="public_chat")
    await api.join_ok(bob.access_token, room_id)
    status, body = await _set_role(api, bob, room_id, bob.user_id, "admin")
    assert_error(status, body, 403, "M_FORBIDDEN")


async def test_roles_of_a_room_one_is_not_in(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await _roles(api, bob, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await _roles(api, bob, "!unknown:localhost")
    assert_error(status, body, 404, "M_NOT_FOUND")


# Channels


async def test_subscriber_reads_and_reacts_but_cannot_post(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token, preset="public_chat", creation_content=CHANNEL
    )
    await api.join_ok(bob.access_token, room_id)
    post = await api.send_text(alice.access_token, room_id, "first post")
    status, body = await api.send(bob.access_token, room_id, "m.room.message", TEXT)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await _reaction(api, bob, room_id, post)
    assert status == 200, body


async def test_admin_posts_in_a_channel(api: Api, alice: Registered, bob: Registered) -> None:
    room_id = await api.create_room(
        alice.access_token, preset="public_chat", creation_content=CHANNEL
    )
    await api.join_ok(bob.access_token, room_id)
    assert (await _set_role(api, alice, room_id, bob.user_id, "admin"))[0] == 200
    await api.send_text(bob.access_token, room_id, "admin post")


async def test_public_channel_joined_by_alias_and_described(
    api: Api, alice: Registered, bob: Registered
) -> None:
    name = fresh_username("news")
    room_id = await api.create_room(
        alice.access_token,
        visibility="public",
        room_alias_name=name,
        name="News",
        topic="Daily",
        creation_content=CHANNEL,
    )
    assert await api.join_ok(bob.access_token, f"#{name}:localhost") == room_id
    assert await _info(api, bob, room_id) == (
        200,
        {
            "room_id": room_id,
            "name": "News",
            "topic": "Daily",
            "subscriber_count": 2,
            "your_role": "member",
            "public": True,
        },
    )


async def test_private_channel_needs_an_invitation(
    api: Api, alice: Registered, bob: Registered
) -> None:
    room_id = await api.create_room(alice.access_token, creation_content=CHANNEL)
    status, body = await api.join(bob.access_token, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    status, body = await _info(api, bob, room_id)
    assert_error(status, body, 403, "M_FORBIDDEN")
    await api.membership_action_ok(alice.access_token, room_id, "invite", bob.user_id)
    await api.join_ok(bob.access_token, room_id)
    status, body = await _info(api, bob, room_id)
    assert (status, body["public"], body["your_role"]) == (200, False, "member")


async def test_channel_info_of_a_plain_room(api: Api, alice: Registered) -> None:
    room_id = await api.create_room(alice.access_token)
    status, body = await _info(api, alice, room_id)
    assert_error(status, body, 404, "LINKCHAT_NOT_A_CHANNEL")


async def test_public_channel_listed_in_the_directory_with_its_type(
    api: Api, alice: Registered
) -> None:
    room_id = await api.create_room(
        alice.access_token, visibility="public", name="Listed", creation_content=CHANNEL
    )
    status, body = await api.request(
        "POST",
        "/publicRooms",
        json={"limit": 500, "filter": {"room_types": ["com.linkchat.channel"]}},
        token=alice.access_token,
    )
    assert status == 200, body
    listed = {entry["room_id"]: entry for entry in body["chunk"]}
    assert listed[room_id]["room_type"] == "com.linkchat.channel", listed.get(room_id)
